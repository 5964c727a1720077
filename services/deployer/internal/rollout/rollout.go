// Package rollout is the deployer's core. Each application has one owner:
// the deployer process that holds the lease in the application's record. The
// owner alone drives the application's rollouts and writes their state;
// verdicts, anomalies and operator commands are requests it applies one at
// a time, in order. A replica that does not hold the lease leaves the
// request in the application's inbox for the owner.
//
// The owner works as a reconcile: an ordered list of steps (lease,
// requests, finish, start, progress, release), each returning a result and
// an error, with the application's Ready condition and the metrics recorded
// at the end of every pass. State lives in a JetStream key-value bucket
// (pkg/runtime/kv): a restarted deployer takes its lease back and resumes or
// finishes what it was doing.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/kv"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Bucket holds rollout and application state.
const Bucket = "RAMPART_ROLLOUTS"

// Rollout is one candidate's way to 100% (or back to 0), stored as the
// operator API serves it.
type Rollout = adminapi.Rollout

// Phase is where a rollout is.
type Phase = adminapi.Phase

// The phases.
const (
	PhaseProgressing = adminapi.PhaseProgressing
	PhasePaused      = adminapi.PhasePaused
	PhaseCompleted   = adminapi.PhaseCompleted
	PhaseRolledBack  = adminapi.PhaseRolledBack
)

// Release is one release of an application that reached 100%.
type Release struct {
	Artifact  string    `json:"artifact"`
	RolloutID string    `json:"rolloutId"`
	ChainID   string    `json:"chainId,omitempty"`
	At        time.Time `json:"at"`
	// Vulnerable is set when a later re-scan found a Critical or High
	// finding in it; such a release is never a rollback target.
	Vulnerable bool `json:"vulnerable,omitempty"`
}

// Candidate is a verified passing verdict waiting for the active rollout of
// its application to finish.
type Candidate struct {
	Artifact    string `json:"artifact"`
	ScanEventID string `json:"scanEventId"`
	ChainID     string `json:"chainId,omitempty"`
	// TraceParent is the span of the verdict's delivery: the rollout
	// continues its trace.
	TraceParent string `json:"traceParent,omitempty"`
}

// AppState is what the deployer knows of one application.
type AppState struct {
	App string `json:"app"`
	// Lease names the deployer process that owns the application: the only
	// one that acts on it. It is free while the application has no work.
	Lease kv.Lease `json:"lease,omitzero"`
	// Active is the rollout in progress, or the one whose end is still to
	// be carried out.
	Active string `json:"active,omitempty"`
	// Releases are the completed releases, oldest first; the last is live.
	Releases []Release `json:"releases,omitempty"`
	// Queued is the next candidate, started when Active ends.
	Queued *Candidate `json:"queued,omitempty"`
	// Inbox holds requests that replicas without the lease received, for
	// the owner to apply in order.
	Inbox []Request `json:"inbox,omitempty"`
	// Staging are candidates deployed to a stage and not yet served there
	// (at most one per stage): the stage is announced once it serves it.
	Staging []Staging `json:"staging,omitempty"`
	// Ready is the outcome of the owner's last pass.
	Ready *Condition `json:"ready,omitempty"`
}

// Live is the live release, if any.
func (a *AppState) Live() *Release {
	if len(a.Releases) == 0 {
		return nil
	}
	return &a.Releases[len(a.Releases)-1]
}

// hasWork reports whether the application needs an owner.
func (a *AppState) hasWork() bool {
	return a.Active != "" || a.Queued != nil || len(a.Inbox) > 0 || len(a.Staging) > 0
}

// Condition is the Ready condition of an application, as Flux records one
// on the objects it reconciles. It changes only when Status, Reason or
// Message do.
type Condition struct {
	// Status is "True" (idle, nothing failing), "Unknown" (a rollout is
	// under way) or "False" (the last pass failed).
	Status  string    `json:"status"`
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
}

func rolloutKey(id string) string { return "rollout." + id }
func appKey(app string) string    { return "app." + app }

// ErrNotFound is returned for a rollout that does not exist.
var ErrNotFound = adminapi.ErrNotFound

// ErrFinished is returned for an operator action on a rollout that ended.
var ErrFinished = adminapi.ErrFinished

// store is the bucket seen as rollouts and applications.
type store struct {
	rollouts *kv.Store[Rollout]
	apps     *kv.Store[AppState]
}

// rollout reads one rollout; a missing one is ErrNotFound.
func (s store) rollout(ctx context.Context, id string) (kv.Entry[Rollout], error) {
	e, err := s.rollouts.Get(ctx, rolloutKey(id))
	if errors.Is(err, kv.ErrNotFound) {
		return e, fmt.Errorf("rollout %s: %w", id, ErrNotFound)
	}
	return e, err
}

// app reads one application's state; a new application has an empty one
// at revision 0.
func (s store) app(ctx context.Context, name string) (kv.Entry[AppState], error) {
	e, err := s.apps.Get(ctx, appKey(name))
	if errors.Is(err, kv.ErrNotFound) {
		e.Value, err = AppState{App: name}, nil
	}
	return e, err
}

// list returns every rollout, newest first.
func (s store) list(ctx context.Context) ([]Rollout, error) {
	var out []Rollout
	for e, err := range s.rollouts.List(ctx, "rollout.>") {
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		out = append(out, e.Value)
	}
	slices.SortFunc(out, func(a, b Rollout) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}
