// Package router is the deployer's view of traffic routing: one Router per
// application splits its requests between the stable and the canary version
// by a canary weight in percent.
//
// The implementations are in subpackages, one per way of routing, each with
// the same constructor shape:
//
//   - local: the deployer's own weighted reverse proxy, with per-version
//     Prometheus metrics (the embedded default);
//   - gatewayapi: backend weights on a Kubernetes Gateway API HTTPRoute.
//
// Package routers builds the one an application's policy asks for. This
// package imports neither, so that code which only moves weights (the
// rollout) does not pull in a proxy or client-go.
package router

import (
	"context"
	"errors"
	"fmt"
)

// Router shifts one application's traffic between its stable and canary
// versions.
type Router interface {
	// SetWeight sends canaryPercent (0..100) of the application's requests
	// to the canary and the rest to stable. When it returns nil the weight
	// is in force: the local router applies it to the very next request, a
	// Gateway API route once the gateway has read the updated object.
	SetWeight(ctx context.Context, canaryPercent int) error
	// Weight is the canary percent in force: the last one set, or the one
	// read from the route when the router started.
	Weight() int
}

// The bounds of a canary weight, in percent.
const (
	MinWeight = 0
	MaxWeight = 100
)

// ErrInvalidWeight is returned for a canary weight outside 0..100; nothing
// is changed.
var ErrInvalidWeight = errors.New("canary weight must be within 0..100")

// ValidateWeight returns an error wrapping ErrInvalidWeight unless
// canaryPercent is within MinWeight..MaxWeight. Every Router calls it before
// changing anything.
func ValidateWeight(canaryPercent int) error {
	if canaryPercent < MinWeight || canaryPercent > MaxWeight {
		return fmt.Errorf("%w: got %d", ErrInvalidWeight, canaryPercent)
	}
	return nil
}
