// Package adminapitest is a fake of what the operator API and the console
// act on: rollouts kept in a map, with the actions asked of them recorded.
package adminapitest

import (
	"context"
	"fmt"
	"sync"

	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Rollouts keeps rollouts by id and records the actions asked of them.
// Pause and abort change the rollout as the deployer would; resume and
// promote only record.
type Rollouts struct {
	mu   sync.Mutex
	byID map[string]adminapi.Rollout
	// acted is "action:reason" of each action applied; actors who asked
	// for every action, applied or refused.
	acted  []string
	actors []adminapi.Actor
}

// New returns a Rollouts holding rs.
func New(rs ...adminapi.Rollout) *Rollouts {
	f := &Rollouts{byID: map[string]adminapi.Rollout{}}
	for _, r := range rs {
		f.byID[r.ID] = r
	}
	return f
}

// List returns every rollout, in no order.
func (f *Rollouts) List(context.Context) ([]adminapi.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]adminapi.Rollout, 0, len(f.byID))
	for _, r := range f.byID {
		out = append(out, r)
	}
	return out, nil
}

// Rollout returns rollout id, or an error wrapping adminapi.ErrNotFound.
func (f *Rollouts) Rollout(_ context.Context, id string) (adminapi.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rollout(id)
}

func (f *Rollouts) rollout(id string) (adminapi.Rollout, error) {
	r, ok := f.byID[id]
	if !ok {
		return r, fmt.Errorf("rollout %s: %w", id, adminapi.ErrNotFound)
	}
	return r, nil
}

// Act applies action to rollout id, refusing a finished rollout with
// adminapi.ErrFinished.
func (f *Rollouts) Act(_ context.Context, id string, action adminapi.Action, reason string, by adminapi.Actor) (adminapi.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actors = append(f.actors, by)
	r, err := f.rollout(id)
	if err != nil {
		return r, err
	}
	if r.Phase.Terminal() {
		return r, fmt.Errorf("%w (%s)", adminapi.ErrFinished, r.Phase)
	}
	f.acted = append(f.acted, string(action)+":"+reason)
	switch action {
	case adminapi.ActionPause:
		r.Phase, r.Reason = adminapi.PhasePaused, "paused by operator: "+reason
	case adminapi.ActionAbort:
		r.Phase, r.Weight, r.Reason = adminapi.PhaseRolledBack, 0, "aborted by operator: "+reason
	}
	f.byID[id] = r
	return r, nil
}

// Acted returns "action:reason" of each action applied, in order.
func (f *Rollouts) Acted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.acted...)
}

// Actors returns who asked for each action, applied or refused, in order.
func (f *Rollouts) Actors() []adminapi.Actor {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]adminapi.Actor(nil), f.actors...)
}
