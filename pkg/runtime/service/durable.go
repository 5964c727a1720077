package service

import (
	"context"
	"fmt"

	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Durable is a component that, so far, only holds its durable consumers: it
// creates them at start (so no event published meanwhile is missed) and is
// ready while they exist. It consumes nothing.
type Durable struct {
	name      string
	consumers []bus.ConsumerOptions
	bus       *bus.Bus
}

// NewDurable returns a component named name holding the given consumers.
func NewDurable(name string, consumers ...bus.ConsumerOptions) *Durable {
	return &Durable{name: name, consumers: consumers}
}

// Name implements Component.
func (d *Durable) Name() string { return d.name }

// Start implements Component.
func (d *Durable) Start(ctx context.Context, deps Deps) error {
	d.bus = deps.Bus
	for _, c := range d.consumers {
		if _, err := deps.Bus.EnsureConsumer(ctx, c); err != nil {
			return err
		}
	}
	deps.Logger.Info("durable consumers ready", "count", len(d.consumers))
	return nil
}

// Stop implements Component.
func (d *Durable) Stop(context.Context) error { return nil }

// Ready implements ReadyChecker: every consumer must exist on the server.
func (d *Durable) Ready(ctx context.Context) error {
	for _, c := range d.consumers {
		if _, err := d.bus.JetStream().Consumer(ctx, bus.StreamName, c.Durable); err != nil {
			return fmt.Errorf("consumer %s: %w", c.Durable, err)
		}
	}
	return nil
}
