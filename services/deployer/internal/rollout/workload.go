package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
)

// Slot is where a version runs: the stable or the canary upstream.
type Slot string

// The two slots every application has.
const (
	SlotStable Slot = "stable"
	SlotCanary Slot = "canary"
)

// Workload makes an artifact run in an application's slot: the candidate in
// the canary slot before the first step, the release in the stable slot
// when it completes, the previous release in the stable slot when the live
// one is rolled back. Without a Workload the deployer only moves traffic
// between the upstreams the policy names, and whatever runs there is
// deployed by other means. Deploy is idempotent: deploying what a slot
// runs already changes nothing.
type Workload interface {
	Deploy(ctx context.Context, app policy.App, slot Slot, artifact string) error
}

// Progress is how far a slot is from serving an artifact.
type Progress struct {
	// Available: the slot serves the artifact with all its replicas.
	Available bool
	// Failed says why the slot will not get there (its progress deadline
	// passed); the rollout is aborted.
	Failed string
	// Waiting says what is awaited, for the log.
	Waiting string
}

// Awaiter is a Workload whose Deploy only starts the change: traffic moves
// to a slot once Progress says it is available. since is when Deploy was
// called for artifact; the workload's own deadline counts from there.
type Awaiter interface {
	Progress(ctx context.Context, app policy.App, slot Slot, artifact string, since time.Time) (Progress, error)
}

// Scaler is a Workload that can take a slot's instances away: the canary,
// a while after a rollback took its traffic.
type Scaler interface {
	ScaleDown(ctx context.Context, app policy.App, slot Slot) error
}

// workload is the application's Workload, nil for none.
func (o *owner) workload() Workload {
	if w, ok := o.m.opts.Workloads[o.app]; ok {
		return w
	}
	return o.m.opts.Workload
}

// deploy runs r's candidate in slot once: it is recorded in the rollout
// after the workload took it, so a deployer killed in between deploys it
// again (which changes nothing) and the wait counts from the record.
func (o *owner) deploy(ctx context.Context, app policy.App, slot Slot) error {
	r := o.active.Value
	at := &r.CanaryDeployedAt
	if slot == SlotStable {
		at = &r.StableDeployedAt
	}
	if !at.IsZero() {
		return nil
	}
	ctx = WithChange(ctx, Change{RolloutID: r.ID, ChainID: r.ChainID})
	if err := o.workload().Deploy(ctx, app, slot, r.Artifact); err != nil {
		return fmt.Errorf("deploy %s to the %s slot: %w", r.Artifact, slot, err)
	}
	*at = o.m.now().UTC()
	r.UpdatedAt = *at
	o.log.Info("deployed", "rollout", r.ID, "slot", slot, "artifact", r.Artifact)
	return o.saveRollout(ctx, r)
}

// available reports whether slot serves the active rollout's candidate;
// while it does not, the pass asks to run again after the poll interval.
// failed is the workload's reason when it will never get there.
func (o *owner) available(ctx context.Context, p *pass, app policy.App, slot Slot) (ok bool, failed string, err error) {
	aw, is := o.workload().(Awaiter)
	if !is {
		return true, "", nil
	}
	r := &o.active.Value
	since := r.CanaryDeployedAt
	if slot == SlotStable {
		since = r.StableDeployedAt
	}
	pr, err := aw.Progress(ctx, app, slot, r.Artifact, since)
	switch {
	case err != nil:
		return false, "", fmt.Errorf("progress of the %s slot: %w", slot, err)
	case pr.Available:
		return true, "", nil
	case pr.Failed != "":
		return false, pr.Failed, nil
	}
	o.log.Debug("waiting for the slot to serve the candidate", "rollout", r.ID, "slot", slot, "waiting", pr.Waiting)
	p.requeue(p.now.Add(o.m.opts.WorkloadPoll))
	return false, "", nil
}

// deployCanary deploys the candidate to the canary slot and reports
// whether it serves it yet. A canary that will never be available aborts
// the rollout: no traffic went to it.
func (o *owner) deployCanary(ctx context.Context, p *pass, app policy.App) (bool, error) {
	if o.workload() == nil {
		return true, nil
	}
	if err := o.deploy(ctx, app, SlotCanary); err != nil {
		return false, err
	}
	ok, failed, err := o.available(ctx, p, app, SlotCanary)
	if err != nil || ok || failed == "" {
		return ok, err
	}
	r := o.active.Value
	trigger := events.Anomaly{Target: events.TargetCanary, App: o.app, Environment: r.Environment, ArtifactID: r.Artifact,
		RolloutID: r.ID, Rule: "progress-deadline", Origin: "deployer", Description: "canary not available: " + failed,
		DetectedAt: o.m.now().UTC()}
	return false, o.abort(ctx, trigger, "", time.Time{})
}

// scaleDownCanary takes the canary's instances away once the policy's
// delay after a rollback has passed; before that it asks for a pass then
// and reports false.
func (o *owner) scaleDownCanary(ctx context.Context, p *pass, app policy.App) (bool, error) {
	sc, ok := o.workload().(Scaler)
	r := &o.active.Value
	if !ok || r.CanaryDeployedAt.IsZero() {
		return true, nil
	}
	delay := policy.DefaultScaleDownDelay
	if app.Workload != nil && app.Workload.ScaleDownDelay != nil {
		delay = *app.Workload.ScaleDownDelay
	}
	if due := r.FinishedAt.Add(delay); p.now.Before(due) {
		p.requeue(due)
		return false, nil
	}
	if err := sc.ScaleDown(ctx, app, SlotCanary); err != nil {
		return false, fmt.Errorf("scale the canary down: %w", err)
	}
	o.log.Info("canary scaled down", "rollout", r.ID)
	return true, nil
}

// Change names the rollout a Workload's Deploy is part of, for workloads
// that record it (a commit message).
type Change struct {
	RolloutID string
	ChainID   string
}

type changeKey struct{}

// WithChange is ctx carrying c to the Workload.
func WithChange(ctx context.Context, c Change) context.Context {
	return context.WithValue(ctx, changeKey{}, c)
}

// ChangeOf is the change ctx carries; zero without one.
func ChangeOf(ctx context.Context) Change {
	c, _ := ctx.Value(changeKey{}).(Change)
	return c
}
