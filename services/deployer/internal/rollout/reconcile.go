package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/kv"
)

// result is what a step of a pass says about the rest of it.
type result int

const (
	// resultEmpty: nothing (more) to do until a request, a wake-up or the
	// pass's requeue time.
	resultEmpty result = iota
	// resultRequeue: the state moved on; run the pass again at once.
	resultRequeue
	// resultSuccess: the step is done; go on with the next.
	resultSuccess
)

func (r result) String() string {
	return [...]string{"empty", "requeue", "success"}[r]
}

// pass is one run of the steps over the application.
type pass struct {
	now time.Time
	// requeueAt is when something falls due (a step's pause ends, the
	// lease needs renewing, another's lease runs out); zero for never.
	requeueAt time.Time
	// owned: this process held the lease during the pass.
	owned bool
}

func (p *pass) requeue(at time.Time) {
	if p.requeueAt.IsZero() || at.Before(p.requeueAt) {
		p.requeueAt = at
	}
}

type step struct {
	name string
	run  func(ctx context.Context, p *pass) (result, error)
}

// reconcile runs the steps in order until one fails or has nothing more to
// do, then records the application's Ready condition, publishes the step
// announcements of the pass and the metrics, and says when to run again
// (negative: not until something happens). The announcements go out last,
// so whoever acts on a step event finds the owner free.
func (o *owner) reconcile(ctx context.Context) (next time.Duration) {
	start := time.Now()
	p := &pass{now: o.m.now()}
	res, err := resultEmpty, error(nil)
	defer func() {
		if p.owned && !errors.Is(err, errLeaseLost) {
			if o.serveWaiting(ctx) {
				next = 0 // no step of this pass saw that request: run one for it now
			}
			o.recordReady(ctx, err)
		}
		if ferr := o.flush(ctx); ferr != nil && err == nil {
			err = fmt.Errorf("announce: %w", ferr)
			next = o.failed(err)
		}
		label := res.String()
		if err != nil {
			label = "error"
		}
		o.m.metrics.reconcile.WithLabelValues(label).Observe(time.Since(start).Seconds())
	}()
	for _, s := range []step{
		{"lease", o.stepLease},       // hold the application, or leave it to its owner
		{"requests", o.stepRequests}, // apply what other replicas left in the inbox
		{"stages", o.stepStages},     // announce the stages that serve their candidate now
		{"finish", o.stepFinish},     // announce the end of the active rollout, record the release
		{"start", o.stepStart},       // begin the queued candidate when nothing is active
		{"progress", o.stepProgress}, // move the active rollout on when its step is due
		{"release", o.stepRelease},   // let the lease go when nothing is left to do
	} {
		o.serveWaiting(ctx)
		res, err = s.run(ctx, p)
		if err != nil {
			err = fmt.Errorf("%s: %w", s.name, err)
			break
		}
		if res != resultSuccess {
			break
		}
	}
	switch {
	case errors.Is(err, errLeaseLost):
		o.log.Warn("another deployer took the application over", "err", err)
		return 0
	case err != nil:
		return o.failed(err)
	case res == resultRequeue:
		return 0
	}
	o.retry = minRetry
	if p.requeueAt.IsZero() {
		return -1
	}
	return max(0, p.requeueAt.Sub(o.m.now()))
}

// failed logs a failed pass and returns the wait before the next, doubled
// after each failure in a row.
func (o *owner) failed(err error) time.Duration {
	o.log.Error("rollout pass failed; retrying", "err", err, "in", o.retry)
	wait := o.retry
	o.retry = min(2*o.retry, 5*time.Second)
	return wait
}

// flush publishes the pending step announcements in order; what fails stays
// for the next pass.
func (o *owner) flush(ctx context.Context) error {
	for len(o.outbox) > 0 {
		if _, err := o.m.bus.Publish(ctx, o.outbox[0]); err != nil {
			return err
		}
		o.outbox = o.outbox[1:]
	}
	return nil
}

// serveWaiting applies a request that is waiting, between two steps of a
// pass: an anomaly does not wait for the rest of the pass to cut traffic.
// Each step starts from the state the request left. It reports whether it
// applied one.
func (o *owner) serveWaiting(ctx context.Context) bool {
	select {
	case c := <-o.calls:
		r, err := o.handle(ctx, c.req)
		c.done <- answer{r, err}
		return true
	default:
		return false
	}
}

// stepLease reads the application record and holds the lease while the
// application has work. With another's live lease the pass ends here and
// looks again when that lease would run out.
func (o *owner) stepLease(ctx context.Context, p *pass) (result, error) {
	e, err := o.m.store.app(ctx, o.app)
	if err != nil {
		return resultEmpty, err
	}
	o.remember(e)
	a := &o.state.Value
	if a.Lease.HeldByOther(o.m.opts.Owner, p.now) {
		if o.holds(p.now) {
			o.log.Warn("the application's lease is held by another deployer", "holder", a.Lease.Holder)
		}
		o.drop()
		p.requeue(a.Lease.Until.Add(10 * time.Millisecond))
		return resultEmpty, nil
	}
	if !a.hasWork() {
		o.active = nil
		if a.Lease.Holder != o.m.opts.Owner {
			o.drop()
			return resultEmpty, nil // idle, and nobody's
		}
		p.owned = true
		return resultSuccess, nil // the release step lets it go
	}
	if err := o.acquire(ctx); errors.Is(err, errHeldElsewhere) {
		p.requeue(o.state.Value.Lease.Until.Add(10 * time.Millisecond))
		return resultEmpty, nil
	} else if err != nil {
		return resultEmpty, err
	}
	p.owned = true
	p.requeue(o.until.Add(-2 * o.m.opts.Lease / 3))
	if id := o.state.Value.Active; (o.active == nil) != (id == "") || (o.active != nil && o.active.Value.ID != id) {
		if err := o.loadActive(ctx); err != nil {
			return resultEmpty, err
		}
	}
	return resultSuccess, nil
}

// stepRequests applies the requests other replicas left in the inbox, in
// order, taking each out once it is applied.
func (o *owner) stepRequests(ctx context.Context, _ *pass) (result, error) {
	inbox := slices.Clone(o.state.Value.Inbox)
	for _, req := range inbox {
		_, err := o.apply(ctx, req)
		switch {
		case errors.Is(err, ErrFinished), errors.Is(err, ErrNotFound), errors.Is(err, errUnknownRequest):
			o.log.Warn("request dropped", "kind", req.Kind, "request", req.ID, "err", err)
		case err != nil:
			return resultEmpty, fmt.Errorf("%s request %s: %w", req.Kind, req.ID, err)
		}
		err = o.updateApp(ctx, func(a *AppState) bool {
			i := slices.IndexFunc(a.Inbox, func(r Request) bool { return r.ID == req.ID })
			if i < 0 {
				return false
			}
			a.Inbox = slices.Delete(a.Inbox, i, i+1)
			return true
		})
		if err != nil {
			return resultEmpty, err
		}
	}
	if len(o.state.Value.Inbox) > 0 {
		return resultRequeue, nil // more arrived meanwhile
	}
	return resultSuccess, nil
}

// stepFinish carries out the end of the active rollout once it has ended:
//
//   - completed: the stable slot runs the candidate and takes all traffic;
//     the release is recorded and announced.
//   - rolled back: all traffic is on the stable slot (the instant part was
//     done when it was aborted); the rollback is announced, and the
//     canary is scaled down once the policy's delay has passed.
//
// With a workload, a completed release first goes to the stable slot, and
// traffic leaves the canary once the stable slot serves it.
//
// The application record points at the rollout until this is done, so a
// deployer killed half-way finishes it when it starts again; announcing
// twice is harmless (the event id is fixed).
func (o *owner) stepFinish(ctx context.Context, p *pass) (result, error) {
	if o.active == nil || !o.active.Value.Phase.Terminal() {
		return resultSuccess, nil
	}
	r := &o.active.Value
	app, err := o.policyApp()
	if err != nil {
		return resultEmpty, err
	}
	if r.Phase == PhaseCompleted {
		if o.workload() != nil {
			// The canary serves all traffic until the stable slot serves
			// the release too.
			if err := o.deploy(ctx, app, SlotStable); err != nil {
				return resultEmpty, err
			}
			r = &o.active.Value
			ok, failed, err := o.available(ctx, p, app, SlotStable)
			if err != nil {
				return resultEmpty, err
			}
			if failed != "" {
				return resultEmpty, fmt.Errorf("the stable slot does not serve the release (traffic stays on the canary): %s", failed)
			}
			if !ok {
				return resultEmpty, nil
			}
		}
		if err := o.setWeight(ctx, 0); err != nil {
			return resultEmpty, err
		}
		ev, err := events.NewReleaseCompleted(o.m.meta(r, "release:"+r.ID, stepEventID(r, len(r.Steps)-1)), events.Release{
			RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact, Previous: r.Stable,
		})
		if err := o.announce(ctx, r, ev, err); err != nil {
			return resultEmpty, err
		}
	} else {
		if err := o.publishRollback(ctx, r); err != nil {
			return resultEmpty, err
		}
		if done, err := o.scaleDownCanary(ctx, p, app); err != nil || !done {
			return resultEmpty, err
		}
	}
	err = o.updateApp(ctx, func(a *AppState) bool {
		if a.Active != r.ID {
			return false
		}
		if r.Phase == PhaseCompleted && (a.Live() == nil || a.Live().RolloutID != r.ID) {
			a.Releases = append(a.Releases, Release{Artifact: r.Artifact, RolloutID: r.ID, ChainID: r.ChainID, At: r.FinishedAt})
		}
		a.Active = ""
		return true
	})
	if err != nil {
		return resultEmpty, err
	}
	o.active = nil
	return resultSuccess, nil
}

// stepStart begins the queued candidate when no rollout is active.
func (o *owner) stepStart(ctx context.Context, _ *pass) (result, error) {
	a := &o.state.Value
	if a.Active != "" && o.active == nil {
		// A record older than this ordering: the rollout was never written.
		o.log.Warn("active rollout has no record; dropping it", "rollout", a.Active)
		return resultRequeue, o.updateApp(ctx, func(a *AppState) bool { a.Active = ""; return true })
	}
	if a.Active != "" || a.Queued == nil {
		return resultSuccess, nil
	}
	if err := o.begin(ctx, *a.Queued); err != nil {
		return resultEmpty, err
	}
	return resultSuccess, nil
}

// begin starts candidate c: its rollout is recorded, then made the active
// one (and c leaves the queue). The promotion is announced by the first
// progress step. A candidate that is live already, or whose rollout ran
// before, only leaves the queue.
func (o *owner) begin(ctx context.Context, c Candidate) error {
	dequeue := func(a *AppState) {
		if a.Queued != nil && a.Queued.ScanEventID == c.ScanEventID {
			a.Queued = nil
		}
	}
	id := rolloutID(o.app, c.ScanEventID)
	live := o.state.Value.Live()
	if live != nil && live.Artifact == c.Artifact {
		o.log.Info("artifact is already live", "artifact", c.Artifact)
		return o.updateApp(ctx, func(a *AppState) bool { dequeue(a); return true })
	}
	app, err := o.policyApp()
	if err != nil {
		return err
	}
	now := o.m.now().UTC()
	r := Rollout{
		ID: id, App: app.Name, Environment: app.Environment, Artifact: c.Artifact, ChainID: c.ChainID, TraceParent: c.TraceParent,
		ScanEventID: c.ScanEventID, Steps: app.Canary.Steps, Pause: app.Canary.Pause, Step: -1,
		Phase: PhaseProgressing, CreatedAt: now, UpdatedAt: now,
	}
	if live != nil {
		r.Stable = live.Artifact
	}
	e, err := o.m.store.rollouts.Put(ctx, kv.Entry[Rollout]{Key: rolloutKey(id), Value: r})
	if errors.Is(err, kv.ErrConflict) {
		e, err = o.m.store.rollout(ctx, id) // begun before a restart
	}
	if err != nil {
		return err
	}
	if e.Value.Phase.Terminal() {
		o.log.Info("candidate's rollout has run already", "rollout", id, "phase", e.Value.Phase)
		return o.updateApp(ctx, func(a *AppState) bool { dequeue(a); return true })
	}
	err = o.updateApp(ctx, func(a *AppState) bool {
		a.Active = id
		dequeue(a)
		return true
	})
	if err != nil {
		return err
	}
	o.active = &e
	o.m.metrics.rollouts.WithLabelValues("started").Inc()
	return nil
}

// stepProgress moves the active rollout on: before the first step the
// promotion is announced and the candidate deployed to the canary slot
// (the first step waits until the slot serves it);
// then each step is taken when the previous one's pause is over, and after
// the last the rollout completes.
func (o *owner) stepProgress(ctx context.Context, p *pass) (result, error) {
	if o.active == nil || o.active.Value.Phase.Terminal() || o.active.Value.Phase == PhasePaused {
		return resultSuccess, nil
	}
	r := o.active.Value
	if r.Step < 0 {
		app, err := o.policyApp()
		if err != nil {
			return resultEmpty, err
		}
		if r.CanaryDeployedAt.IsZero() {
			if err := o.publishPromote(ctx, &r); err != nil {
				return resultEmpty, err
			}
		}
		ok, err := o.deployCanary(ctx, p, app)
		switch {
		case err != nil:
			return resultEmpty, err
		case o.active.Value.Phase.Terminal():
			return resultRequeue, nil // aborted: the finish step carries it out
		case !ok:
			return resultSuccess, nil // not available yet
		}
		return o.step(ctx, p, 0)
	}
	if due := r.StepStartedAt.Add(r.Pause); p.now.Before(due) {
		p.requeue(due)
		return resultSuccess, nil
	}
	if r.Step+1 < len(r.Steps) {
		return o.step(ctx, p, r.Step+1)
	}
	now := o.m.now().UTC()
	r.Phase, r.FinishedAt, r.UpdatedAt, r.Reason = PhaseCompleted, now, now, "all steps passed"
	if err := o.saveRollout(ctx, r); err != nil {
		return resultEmpty, err
	}
	o.m.metrics.rollouts.WithLabelValues(string(PhaseCompleted)).Inc()
	return resultRequeue, nil // the finish step carries the end out
}

// step records and applies step i of the active rollout, and leaves its
// announcement for the end of the pass. A deployer killed in between
// re-applies and re-announces the recorded step when it takes the
// application back.
func (o *owner) step(ctx context.Context, p *pass, i int) (result, error) {
	r := o.active.Value
	now := o.m.now()
	r.Step, r.Weight, r.StepStartedAt, r.UpdatedAt = i, r.Steps[i], now.UTC(), now.UTC()
	if err := o.saveRollout(ctx, r); err != nil {
		return resultEmpty, err
	}
	if err := o.setWeight(ctx, r.Weight); err != nil {
		return resultEmpty, err
	}
	o.log.Info("canary step", "rollout", r.ID, "step", i, "weight", r.Weight)
	ev, err := o.stepEvent(&r)
	if err != nil {
		return resultEmpty, err
	}
	o.outbox = append(o.outbox, ev) // announced at the end of the pass
	p.requeue(now.Add(r.Pause))
	return resultSuccess, nil
}

// stepRelease lets the lease go when the application has nothing left to
// do, so that whichever replica receives its next request can act on it.
func (o *owner) stepRelease(ctx context.Context, _ *pass) (result, error) {
	if o.state.Value.hasWork() || o.state.Value.Lease.Holder != o.m.opts.Owner {
		return resultSuccess, nil
	}
	err := o.updateApp(ctx, func(a *AppState) bool {
		if a.hasWork() {
			return false
		}
		a.Lease.Free()
		return true
	})
	if err != nil {
		return resultEmpty, err
	}
	if o.state.Value.hasWork() {
		return resultRequeue, nil // a request arrived meanwhile
	}
	o.drop()
	return resultSuccess, nil
}

// recordReady records the outcome of the pass as the application's Ready
// condition, when it changed.
func (o *owner) recordReady(ctx context.Context, failed error) {
	c := Condition{Status: "True", Reason: "Idle", Message: "no release yet"}
	if live := o.state.Value.Live(); live != nil {
		c.Message = "live: " + live.Artifact
	}
	switch r := o.active; {
	case failed != nil:
		c = Condition{Status: "False", Reason: "Failed", Message: failed.Error()}
	case r != nil && r.Value.Phase == PhasePaused:
		c = Condition{Status: "Unknown", Reason: "Paused", Message: r.Value.Reason}
	case r != nil && !r.Value.Phase.Terminal():
		c = Condition{Status: "Unknown", Reason: "Progressing",
			Message: fmt.Sprintf("rollout %s at step %d of %d (%d%%)", r.Value.ID, r.Value.Step+1, len(r.Value.Steps), r.Value.Weight)}
	}
	if old := o.state.Value.Ready; old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
		return
	}
	c.Since = o.m.now().UTC()
	err := o.updateApp(ctx, func(a *AppState) bool { a.Ready = &c; return true })
	if err != nil && !errors.Is(err, errLeaseLost) {
		o.log.Warn("record the Ready condition", "err", err)
	}
}

// saveRollout writes r as the active rollout. Only the owner writes
// rollouts, so a conflict means this process is no longer the owner.
func (o *owner) saveRollout(ctx context.Context, r Rollout) error {
	e, err := o.m.store.rollouts.Put(ctx, kv.Entry[Rollout]{Key: o.active.Key, Value: r, Revision: o.active.Revision})
	if errors.Is(err, kv.ErrConflict) {
		o.drop()
		return fmt.Errorf("%w: rollout %s was written by another deployer", errLeaseLost, r.ID)
	}
	if err != nil {
		return err
	}
	*o.active = e
	return nil
}

func (o *owner) policyApp() (policy.App, error) {
	app, ok := o.m.policy.Current().App(o.app)
	if !ok {
		return app, fmt.Errorf("application %s is no longer in the policy", o.app)
	}
	return app, nil
}

func stepEventID(r *Rollout, i int) string { return "step:" + r.ID + ":" + strconv.Itoa(i) }

func (o *owner) publishPromote(ctx context.Context, r *Rollout) error {
	ev, err := events.NewPromoted(o.m.meta(r, "promote:"+r.ID, r.ScanEventID), events.Promotion{
		RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact,
		Previous: r.Stable, Steps: r.Steps, ScanID: r.ScanEventID,
	})
	return o.announce(ctx, r, ev, err)
}

// stepEvent is the announcement of r's current step.
func (o *owner) stepEvent(r *Rollout) (cloudevents.Event, error) {
	cause := "promote:" + r.ID
	if r.Step > 0 {
		cause = stepEventID(r, r.Step-1)
	}
	ev, err := events.NewCanaryStepped(o.m.meta(r, stepEventID(r, r.Step), cause), events.CanaryStep{
		RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact,
		Stable: r.Stable, Step: r.Step, Weight: r.Weight,
	})
	bus.SetTraceParent(&ev, r.TraceParent)
	return ev, err
}

// announce publishes ev, an event about r just built, in r's trace; err is
// the error of building it.
func (o *owner) announce(ctx context.Context, r *Rollout, ev cloudevents.Event, err error) error {
	if err != nil {
		return err
	}
	bus.SetTraceParent(&ev, r.TraceParent)
	_, err = o.m.bus.Publish(ctx, ev)
	return err
}
