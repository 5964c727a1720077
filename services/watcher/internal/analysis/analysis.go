// Package analysis judges a live canary by its metrics: the providers that
// read them (subpackages scrape and promql, behind Provider) and the rules
// that turn a reading into pass, breach or no data.
package analysis

import (
	"context"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
)

// Target is one canary step to read metrics for.
type Target struct {
	// App is the application, as labelled in the router's metrics.
	App string
	// Since is when the step began: the start of the analysis window.
	Since time.Time
	// Policy is the application's policy: its router and analysis settings.
	Policy policy.App
}

// Reading is what a provider observed of a canary over its window.
type Reading struct {
	// Requests and Errors are the canary's requests and 5xx responses in
	// the window.
	Requests, Errors float64
	// CanaryMemory and StableMemory are the versions' memory gauges in
	// bytes; HasMemory is false when either could not be read.
	CanaryMemory, StableMemory float64
	HasMemory                  bool
	// MemoryReason says why memory is missing, for the no-data log.
	MemoryReason string
	// LatencySum and LatencyCount are the canary's response times in
	// seconds, summed, and how many there were, in the window.
	LatencySum, LatencyCount float64
}

// Provider reads a canary's metrics. Implementations: scrape (the local
// router's and the upstreams' /metrics) and promql (a Prometheus server).
type Provider interface {
	// Open starts a window on t: later reads count from the window's start.
	Open(ctx context.Context, t Target) (Window, error)
}

// Window reads one canary step's metrics since its start.
type Window interface {
	Read(ctx context.Context) (Reading, error)
}
