package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// Approved is an artifact the deployer took on.
type Approved struct {
	RolloutID string
	mark      int // the recorder's position when it was approved
}

// Approve publishes artifact's signed passing verdict and waits for the
// deployer to promote it.
func (e *Env) ApproveAndWait(ctx context.Context, artifact, chainID string, timeout time.Duration) (Approved, error) {
	mark := e.rec.len()
	if err := e.Approve(ctx, artifact, chainID); err != nil {
		return Approved{}, err
	}
	s, i, err := e.rec.wait(ctx, timeout, mark, func(s Seen) bool {
		p, err := events.PromotionOf(s.Event)
		return err == nil && p.ArtifactID == artifact
	})
	if err != nil {
		return Approved{}, fmt.Errorf("promotion of %s: %w", artifact, err)
	}
	p, _ := events.PromotionOf(s.Event)
	return Approved{RolloutID: p.RolloutID, mark: i}, nil
}

// WaitStep waits for the rollout's canary-step event at step.
func (e *Env) WaitStep(ctx context.Context, a Approved, step int, timeout time.Duration) error {
	_, _, err := e.rec.wait(ctx, timeout, a.mark, func(s Seen) bool {
		c, err := events.CanaryStepOf(s.Event)
		return err == nil && c.RolloutID == a.RolloutID && c.Step == step
	})
	if err != nil {
		return fmt.Errorf("step %d of %s: %w", step, a.RolloutID, err)
	}
	return nil
}

// WaitEnd waits for the rollout to complete or roll back and returns that event.
func (e *Env) WaitEnd(ctx context.Context, a Approved, timeout time.Duration) (Seen, error) {
	s, _, err := e.rec.wait(ctx, timeout, a.mark, func(s Seen) bool {
		if r, err := events.RollbackOf(s.Event); err == nil {
			return r.RolloutID == a.RolloutID
		}
		r, err := events.ReleaseOf(s.Event)
		return err == nil && r.RolloutID == a.RolloutID
	})
	if err != nil {
		return Seen{}, fmt.Errorf("end of %s: %w", a.RolloutID, err)
	}
	return s, nil
}

// PromoteThrough drives the rollout to 100% with the operator API instead
// of waiting out each pause, and waits for its release.
func (e *Env) PromoteThrough(ctx context.Context, a Approved, steps int, timeout time.Duration) error {
	for i := 0; i < steps; i++ {
		if err := e.WaitStep(ctx, a, i, timeout); err != nil {
			return err
		}
		if err := e.Promote(ctx, a.RolloutID); err != nil {
			return err
		}
	}
	s, err := e.WaitEnd(ctx, a, timeout)
	if err != nil {
		return err
	}
	if events.KindOf(s.Event.Type()) != events.KindRelease {
		return fmt.Errorf("rollout %s rolled back instead of completing", a.RolloutID)
	}
	return nil
}
