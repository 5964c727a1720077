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
	mark      int // the recorder's position when it was promoted
}

// PushAndWait pushes a version and waits for the scanner's verdict on it.
// A passing verdict is followed by the deployer's promotion, which is
// waited for too. It returns the verdict.
func (e *Env) PushAndWait(ctx context.Context, im Image, timeout time.Duration) (Pushed, events.Scan, Approved, error) {
	mark := e.rec.len()
	p, err := e.Push(ctx, im)
	if err != nil {
		return p, events.Scan{}, Approved{}, err
	}
	ofDigest := func(purl string) bool {
		o, err := events.ParseOCI(purl)
		return err == nil && o.Digest == p.Digest
	}
	s, i, err := e.rec.wait(ctx, timeout, mark, func(s Seen) bool {
		sc, err := events.ScanOf(s.Event)
		return err == nil && ofDigest(sc.Target)
	})
	if err != nil {
		return p, events.Scan{}, Approved{}, fmt.Errorf("verdict on %s: %w", im.Version, err)
	}
	verdict, _ := events.ScanOf(s.Event)
	if verdict.Outcome != events.OutcomePass {
		return p, verdict, Approved{}, nil
	}
	s, i, err = e.rec.wait(ctx, timeout, i, func(s Seen) bool {
		pr, err := events.PromotionOf(s.Event)
		return err == nil && ofDigest(pr.ArtifactID)
	})
	if err != nil {
		return p, verdict, Approved{}, fmt.Errorf("promotion of %s: %w", im.Version, err)
	}
	pr, _ := events.PromotionOf(s.Event)
	return p, verdict, Approved{RolloutID: pr.RolloutID, mark: i}, nil
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

// Staged is a candidate's passage through staging.
type Staged struct {
	Pushed  Pushed
	Image   events.Scan // the image scan's verdict
	Stage   events.Scan // staging's verdict (zero when the image scan blocked)
	StageID string      // the stage verdict's event id
}

// PushToStaging pushes a version and waits for its image verdict, its
// deployment to staging and staging's verdict.
func (e *Env) PushToStaging(ctx context.Context, im Image, timeout time.Duration) (Staged, error) {
	mark := e.rec.len()
	p, err := e.Push(ctx, im)
	if err != nil {
		return Staged{}, err
	}
	st := Staged{Pushed: p}
	ofDigest := func(purl string) bool {
		o, err := events.ParseOCI(purl)
		return err == nil && o.Digest == p.Digest
	}
	verdict := func(kind string) func(Seen) bool {
		return func(s Seen) bool {
			sc, err := events.ScanOf(s.Event)
			return err == nil && sc.TargetKind == kind && ofDigest(sc.Target)
		}
	}
	s, i, err := e.rec.wait(ctx, timeout, mark, verdict("image"))
	if err != nil {
		return st, fmt.Errorf("image verdict on %s: %w", im.Version, err)
	}
	st.Image, _ = events.ScanOf(s.Event)
	if st.Image.Outcome != events.OutcomePass {
		return st, nil
	}
	if _, _, err := e.rec.wait(ctx, timeout, i, func(s Seen) bool {
		sd, err := events.StageDeploymentOf(s.Event)
		return err == nil && sd.Stage == Staging && ofDigest(sd.ArtifactID)
	}); err != nil {
		return st, fmt.Errorf("deployment of %s to staging: %w", im.Version, err)
	}
	if s, _, err = e.rec.wait(ctx, timeout, i, verdict("stage")); err != nil {
		return st, fmt.Errorf("staging's verdict on %s: %w", im.Version, err)
	}
	st.Stage, _ = events.ScanOf(s.Event)
	st.StageID = s.Event.ID()
	return st, nil
}

// neverPromoted checks that, once the deployer has handled every verdict,
// no promotion of the pushed version exists.
func (e *Env) neverPromoted(ctx context.Context, p Pushed, timeout time.Duration) error {
	if err := e.waitConsumed(ctx, "deployer", timeout); err != nil {
		return err
	}
	if n := e.rec.count(func(s Seen) bool {
		pr, err := events.PromotionOf(s.Event)
		if err != nil {
			return false
		}
		o, err := events.ParseOCI(pr.ArtifactID)
		return err == nil && o.Digest == p.Digest
	}); n != 0 {
		return fmt.Errorf("%s was promoted", p.Purl)
	}
	return nil
}

// StoppedInStaging checks that a candidate staging blocked went no
// further: no promotion of it exists and the canary has no traffic.
func (e *Env) StoppedInStaging(ctx context.Context, st Staged, timeout time.Duration) error {
	if err := e.neverPromoted(ctx, st.Pushed, timeout); err != nil {
		return fmt.Errorf("despite staging's blocked verdict: %w", err)
	}
	if w, _ := e.Mesh.Deployer.Weight(App); w != 0 {
		return fmt.Errorf("canary weight %d%% with a candidate stopped in staging", w)
	}
	return nil
}
