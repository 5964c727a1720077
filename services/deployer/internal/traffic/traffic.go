// Package traffic is how the deployer moves an application's requests
// between its stable and its canary version: a Router sets the canary's
// share in percent, and every implementation checks the weight with
// ValidateWeight.
//
// The implementations are its subpackages, one per way of routing:
//
//   - local: the deployer's own weighted reverse proxy, with per-version
//     Prometheus metrics (the embedded default);
//   - gatewayapi: backend weights on a Kubernetes Gateway API HTTPRoute.
//
// The deployer's app picks the one each application's policy names. The
// rollout engine does not import this package: it declares the one method
// it calls (SetWeight) itself.
package traffic

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
