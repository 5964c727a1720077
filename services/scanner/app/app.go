// Package app is the scanner service as a component: the same in its own
// binary and inside `rampart up`.
package app

import (
	"github.com/rampartci/rampart/pkg/events/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// Consumer is the scanner's durable consumer: commits to scan at source and
// pushed artifacts to scan as images.
var Consumer = bus.ConsumerOptions{
	Durable:        "scanner",
	FilterSubjects: []string{"rampart.commit.>", "rampart.artifact.>"},
}

// New returns the scanner. It holds its durable consumer so that no commit
// or push published before it scans them is missed.
func New() service.Component { return service.NewDurable("scanner", Consumer) }
