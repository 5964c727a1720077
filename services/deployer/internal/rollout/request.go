package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// ErrFinished is returned for an operator action on a rollout that ended.
var ErrFinished = fmt.Errorf("rollout has finished")

// Pause holds rollout id at its current step.
func (m *Manager) Pause(ctx context.Context, id, reason string) (*Rollout, error) {
	return m.operate(ctx, id, func(r *Rollout) {
		r.Phase, r.Reason = PhasePaused, "paused by operator: "+reason
	})
}

// Resume continues a paused rollout; the current step's pause starts again.
func (m *Manager) Resume(ctx context.Context, id string) (*Rollout, error) {
	return m.operate(ctx, id, func(r *Rollout) {
		r.Phase, r.Reason, r.StepStartedAt = PhaseProgressing, "", m.now().UTC()
	})
}

// Promote ends the current step's pause now, so the next step follows at once.
func (m *Manager) Promote(ctx context.Context, id string) (*Rollout, error) {
	return m.operate(ctx, id, func(r *Rollout) {
		r.Phase, r.Reason, r.StepStartedAt = PhaseProgressing, "", time.Time{}
	})
}

// Abort rolls rollout id back as an anomaly would.
func (m *Manager) Abort(ctx context.Context, id, reason string) (*Rollout, error) {
	r, err := m.store.Rollout(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Phase.Terminal() {
		return r, fmt.Errorf("%w (%s)", ErrFinished, r.Phase)
	}
	trigger := events.Anomaly{Target: events.TargetCanary, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact,
		RolloutID: r.ID, Rule: "operator", Origin: "operator", Description: "aborted by operator: " + reason, DetectedAt: m.now().UTC()}
	if err := m.abort(ctx, id, trigger, "operator:"+id, time.Now()); err != nil {
		return nil, err
	}
	return m.store.Rollout(ctx, id)
}

func (m *Manager) operate(ctx context.Context, id string, change func(r *Rollout)) (*Rollout, error) {
	r, _, err := m.store.updateRollout(ctx, id, func(r *Rollout) (bool, error) {
		if r.Phase.Terminal() {
			return false, fmt.Errorf("%w (%s)", ErrFinished, r.Phase)
		}
		change(r)
		r.UpdatedAt = m.now().UTC()
		return true, nil
	})
	if err != nil {
		return r, err
	}
	m.wake(id)
	return r, nil
}
