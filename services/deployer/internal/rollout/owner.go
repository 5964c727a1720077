package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/runtime/kv"
)

// owner is one application's owner in this process: a goroutine that
// applies the application's requests one at a time and drives its rollouts,
// while it holds the application's lease. Without the lease it only leaves
// requests in the inbox of the process that holds it, and takes the lease
// over when that one lets it go or runs out.
//
// The fields after wake are touched by run's goroutine only.
type owner struct {
	m     *Manager
	app   string
	log   *slog.Logger
	calls chan call
	wake  chan struct{}

	// state is the application record as last read or written.
	state kv.Entry[AppState]
	// active is the record of state.Value.Active, while the lease is held.
	active *kv.Entry[Rollout]
	// until is when this process's lease ends; zero when it holds none.
	until time.Time
	// retry is the wait after a failed pass, doubled on each failure.
	retry time.Duration
	// outbox holds step announcements not published yet.
	outbox []cloudevents.Event
}

// call is a request waiting for its answer.
type call struct {
	req  Request
	done chan answer
}

type answer struct {
	rollout *Rollout
	err     error
}

var (
	// errForwarded: another process owns the application; the request is in
	// its inbox.
	errForwarded = errors.New("left for the application's owner")
	// errHeldElsewhere: another process holds the application's lease.
	errHeldElsewhere = errors.New("application is owned by another deployer")
	// errLeaseLost: this process's lease ran out and another took it.
	errLeaseLost = errors.New("lease on the application lost")
)

const minRetry = 100 * time.Millisecond

func newOwner(m *Manager, app string) *owner {
	return &owner{m: m, app: app, log: m.log.With("app", app), calls: make(chan call), wake: make(chan struct{}, 1), retry: minRetry}
}

// poke makes the owner run a pass soon.
func (o *owner) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run applies requests and runs passes until ctx ends. A pass runs at
// once, after every request, on a wake-up and when the last pass asked to
// be run again.
func (o *owner) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-o.calls:
			r, err := o.handle(ctx, c.req)
			c.done <- answer{r, err}
		case <-o.wake:
		case <-timer.C:
		}
		next := o.reconcile(ctx)
		timer.Stop()
		if next >= 0 {
			timer.Reset(next)
		}
	}
}

// holds reports whether this process holds the lease at now.
func (o *owner) holds(now time.Time) bool { return now.Before(o.until) }

// drop forgets the lease and what it held.
func (o *owner) drop() { o.until, o.active = time.Time{}, nil }

// handle applies req, or leaves it for the owner elsewhere.
func (o *owner) handle(ctx context.Context, req Request) (*Rollout, error) {
	if req.cutsTraffic() && o.cutNow(ctx, req) {
		req.Received = time.Time{} // measured
	}
	for range 3 {
		err := o.acquire(ctx)
		if errors.Is(err, errHeldElsewhere) {
			err = o.forward(ctx, req)
			if errors.Is(err, errLeaseFreed) {
				continue
			}
			if err == nil {
				err = errForwarded
			}
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		return o.apply(ctx, req)
	}
	return nil, fmt.Errorf("%s: the lease changed hands three times in a row", o.app)
}

// cutNow is the instant part of a rollback: when this process owns the
// application and req is about the canary in flight, its weight goes to 0
// before any state is read or written. abort then records the rollback.
func (o *owner) cutNow(ctx context.Context, req Request) bool {
	if !o.holds(o.m.now()) || o.active == nil {
		return false
	}
	r := &o.active.Value
	if r.Phase.Terminal() || r.Step < 0 ||
		(req.Kind == KindBlocked && req.Candidate.Artifact != r.Artifact) ||
		(req.Kind != KindBlocked && req.Rollout != "" && req.Rollout != r.ID) {
		return false
	}
	if err := o.setWeight(ctx, 0); err != nil {
		o.log.Error("rollback: set canary weight 0", "rollout", r.ID, "err", err)
		return false
	}
	if !req.Received.IsZero() {
		o.m.metrics.rollbackLatency.Observe(time.Since(req.Received).Seconds())
	}
	return true
}

// acquire makes sure this process holds the lease for a while yet: it takes
// a free or expired lease, renews its own, and loads the active rollout when
// it takes the application over, putting the router back to the recorded
// weight (a restarted router starts at 0).
func (o *owner) acquire(ctx context.Context) error {
	now := o.m.now()
	if o.holds(now) && o.until.Sub(now) > 2*o.m.opts.Lease/3 {
		return nil
	}
	taken := !o.holds(now)
	e, _, err := o.m.store.apps.Update(ctx, appKey(o.app), func(a *AppState, exists bool) (bool, error) {
		if a.Lease.HeldByOther(o.m.opts.Owner, now) {
			return false, errHeldElsewhere
		}
		if !exists {
			a.App = o.app
		}
		a.Lease.Take(o.m.opts.Owner, now, o.m.opts.Lease)
		return true, nil
	})
	if err == nil || errors.Is(err, errHeldElsewhere) {
		o.remember(e)
	}
	if err != nil {
		o.drop()
		return err
	}
	o.until = e.Value.Lease.Until
	if !taken {
		return nil
	}
	o.log.Debug("took the application's lease", "until", o.until)
	if err := o.restore(ctx); err != nil {
		o.drop() // taken again, and restored, on the next try
		return err
	}
	return nil
}

// restore loads the active rollout and puts the router back to its
// recorded step, announced again (the event id is the step's).
func (o *owner) restore(ctx context.Context) error {
	if err := o.loadActive(ctx); err != nil {
		return err
	}
	r := o.active
	if r == nil || r.Value.Phase.Terminal() || r.Value.Step < 0 {
		return nil
	}
	if err := o.setWeight(ctx, r.Value.Weight); err != nil {
		return err
	}
	ev, err := o.stepEvent(&r.Value)
	return o.announce(ctx, &r.Value, ev, err)
}

// remember keeps e as the application record last seen here.
func (o *owner) remember(e kv.Entry[AppState]) {
	if e.Revision == 0 {
		e.Value.App = o.app
	}
	o.state = e
}

// loadActive reads the active rollout's record.
func (o *owner) loadActive(ctx context.Context) error {
	o.active = nil
	if o.state.Value.Active == "" {
		return nil
	}
	e, err := o.m.store.rollout(ctx, o.state.Value.Active)
	if errors.Is(err, ErrNotFound) {
		return nil // the start step begins it from the candidate
	}
	if err != nil {
		return err
	}
	o.active = &e
	return nil
}

// errLeaseFreed: the owner let the lease go meanwhile; take it here.
var errLeaseFreed = errors.New("lease was freed")

// forward leaves req in the inbox of the process that holds the lease.
func (o *owner) forward(ctx context.Context, req Request) error {
	now := o.m.now()
	e, _, err := o.m.store.apps.Update(ctx, appKey(o.app), func(a *AppState, _ bool) (bool, error) {
		if !a.Lease.HeldByOther(o.m.opts.Owner, now) {
			return false, errLeaseFreed
		}
		if slices.ContainsFunc(a.Inbox, func(r Request) bool { return r.ID == req.ID }) {
			return false, nil
		}
		a.Inbox = append(a.Inbox, req)
		return true, nil
	})
	if err == nil {
		o.remember(e)
		o.log.Debug("request left for the owner", "kind", req.Kind, "request", req.ID, "owner", e.Value.Lease.Holder)
	}
	return err
}

// updateApp changes the application record while this process holds the
// lease; change returns false to leave it as it is.
func (o *owner) updateApp(ctx context.Context, change func(a *AppState) bool) error {
	now := o.m.now()
	e, _, err := o.m.store.apps.Update(ctx, appKey(o.app), func(a *AppState, exists bool) (bool, error) {
		if a.Lease.HeldByOther(o.m.opts.Owner, now) {
			return false, errLeaseLost
		}
		if !exists {
			a.App = o.app
		}
		return change(a), nil
	})
	if errors.Is(err, errLeaseLost) {
		o.drop()
	}
	if err == nil {
		o.remember(e)
	}
	return err
}

// setWeight moves the application's canary weight at its router.
func (o *owner) setWeight(ctx context.Context, w int) error {
	rt, ok := o.m.routers[o.app]
	if !ok {
		return fmt.Errorf("no router for application %s", o.app)
	}
	if err := rt.SetWeight(ctx, w); err != nil {
		return fmt.Errorf("set canary weight %d%%: %w", w, err)
	}
	o.m.metrics.weight.WithLabelValues(o.app).Set(float64(w))
	return nil
}
