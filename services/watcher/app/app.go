// Package app is the watcher service as a component: the same in its own
// binary and inside `rampart up`.
package app

import (
	"github.com/rampartci/rampart/pkg/events/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// Consumer is the watcher's durable consumer: canary steps tell it what is live.
var Consumer = bus.ConsumerOptions{
	Durable:        "watcher",
	FilterSubjects: []string{"rampart.canarystep.>"},
}

// New returns the watcher. It holds its durable consumer so that no canary
// step published before it analyses canaries is missed.
func New() service.Component { return service.NewDurable("watcher", Consumer) }
