// Package app is the notifier service as a component: the same in its own
// binary and inside `rampart up`.
package app

import (
	"github.com/rampartci/rampart/pkg/events/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// Consumer is the notifier's durable consumer: rollbacks and anomalies page
// on-call; blocked scans and completed releases go to chat.
var Consumer = bus.ConsumerOptions{
	Durable:        "notifier",
	FilterSubjects: []string{"rampart.rollback.>", "rampart.anomaly.>", "rampart.scan.>", "rampart.release.>"},
}

// New returns the notifier. It holds its durable consumer so that no
// rollback published before it pages is missed.
func New() service.Component { return service.NewDurable("notifier", Consumer) }
