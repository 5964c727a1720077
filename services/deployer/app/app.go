// Package app is the deployer service as a component: the same in its own
// binary and inside `rampart up`.
package app

import (
	"github.com/rampartci/rampart/pkg/events/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// Consumer is the deployer's durable consumer: scan verdicts to promote, and
// anomalies to roll back on.
var Consumer = bus.ConsumerOptions{
	Durable:        "deployer",
	FilterSubjects: []string{"rampart.scan.>", "rampart.anomaly.>"},
}

// New returns the deployer. It holds its durable consumer so that no verdict
// or anomaly published before it acts on them is missed; the rollout logic
// consumes from it.
func New() service.Component { return service.NewDurable("deployer", Consumer) }
