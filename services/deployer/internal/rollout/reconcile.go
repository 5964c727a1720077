package rollout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
)

// startDriver drives rollout id in its own goroutine unless this process
// already does.
func (m *Manager) startDriver(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.drivers[id]; ok || m.rootCtx.Err() != nil {
		return
	}
	wake := make(chan struct{}, 1)
	m.drivers[id] = wake
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.drivers, id)
			m.mu.Unlock()
		}()
		m.drive(m.rootCtx, id, wake)
	}()
}

// wake makes rollout id's driver look at its state now.
func (m *Manager) wake(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.drivers[id]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// drive moves one rollout through its steps until it ends. Every step is
// first recorded (by revision, renewing this process's lease), then applied
// to the router, then announced; a driver restarted at any point re-applies
// the recorded step, which is idempotent.
func (m *Manager) drive(ctx context.Context, id string, wake <-chan struct{}) {
	log := m.log.With("rollout", id)
	if err := m.restoreWeight(ctx, id); err != nil {
		log.Error("restore the recorded canary weight", "err", err)
	}
	retry := 100 * time.Millisecond
	for ctx.Err() == nil {
		wait, err := m.tick(ctx, id)
		if err != nil {
			if errors.Is(err, errDone) {
				return
			}
			log.Error("rollout step failed; retrying", "err", err, "in", retry)
			wait, retry = retry, min(2*retry, 5*time.Second)
		} else {
			retry = 100 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// errDone ends a driver: the rollout is over, or another process owns it.
var errDone = errors.New("rollout needs no driving here")

// tick does what is due for rollout id and says how long to wait until the
// next thing is.
func (m *Manager) tick(ctx context.Context, id string) (time.Duration, error) {
	r, err := m.store.Rollout(ctx, id)
	if err != nil {
		return 0, err
	}
	if r.Phase.Terminal() {
		return 0, errDone
	}
	now := m.now()
	if r.Owner != m.opts.Owner && now.Before(r.LeaseUntil) {
		// Another replica drives it; look again when its lease would expire.
		return r.LeaseUntil.Sub(now) + 10*time.Millisecond, nil
	}
	app, ok := m.policy.Current().App(r.App)
	if !ok {
		return 0, fmt.Errorf("application %s is no longer in the policy", r.App)
	}
	renewIn := m.opts.Lease / 3
	switch {
	case r.Phase == PhasePaused:
		return renewIn, m.renew(ctx, r)
	case r.Step < 0:
		if m.opts.Workload != nil {
			if err := m.opts.Workload.Deploy(ctx, app, SlotCanary, r.Artifact); err != nil {
				return 0, fmt.Errorf("deploy the candidate to the canary slot: %w", err)
			}
		}
		return 0, m.step(ctx, r, 0)
	}
	due := r.StepStartedAt.Add(r.Pause)
	if now.Before(due) {
		if r.Owner != m.opts.Owner {
			// Taking over from another process: its router state is not ours.
			if err := m.renew(ctx, r); err != nil {
				return 0, err
			}
			return 0, m.restoreWeight(ctx, id)
		}
		if now.Add(renewIn).After(r.LeaseUntil) {
			if err := m.renew(ctx, r); err != nil {
				return 0, err
			}
		}
		return min(due.Sub(now), renewIn), nil
	}
	if r.Step+1 < len(r.Steps) {
		return 0, m.step(ctx, r, r.Step+1)
	}
	return 0, m.complete(ctx, r, app)
}

// renew extends this process's lease on r.
func (m *Manager) renew(ctx context.Context, r *Rollout) error {
	r.Owner, r.LeaseUntil, r.UpdatedAt = m.opts.Owner, m.now().Add(m.opts.Lease), m.now().UTC()
	err := m.store.saveRollout(ctx, r)
	if errors.Is(err, errConflict) {
		return nil // someone changed it; the next tick reads the new state
	}
	return err
}

// restoreWeight sets the router to the weight recorded for rollout id: a
// restarted deployer's router starts at 0. It reads the record under the
// application's lock, so it never undoes an abort that just happened.
func (m *Manager) restoreWeight(ctx context.Context, id string) error {
	r, err := m.store.Rollout(ctx, id)
	if err != nil {
		return err
	}
	unlock := m.lockApp(r.App)
	defer unlock()
	if r, err = m.store.Rollout(ctx, id); err != nil || r.Phase.Terminal() || r.Step < 0 {
		return err
	}
	return m.applyWeight(ctx, r)
}

// step records, applies and announces step i of r.
func (m *Manager) step(ctx context.Context, r *Rollout, i int) error {
	unlock := m.lockApp(r.App)
	now := m.now()
	r.Step, r.Weight, r.StepStartedAt, r.UpdatedAt = i, r.Steps[i], now.UTC(), now.UTC()
	r.Owner, r.LeaseUntil = m.opts.Owner, now.Add(m.opts.Lease)
	if err := m.store.saveRollout(ctx, r); err != nil {
		unlock()
		if errors.Is(err, errConflict) {
			return nil // changed meanwhile (an abort, an operator): look again
		}
		return err
	}
	err := m.applyWeight(ctx, r)
	unlock()
	if err != nil {
		return err
	}
	m.log.Info("canary step", "rollout", r.ID, "app", r.App, "step", i, "weight", r.Weight)
	return m.publishStep(ctx, r)
}

func (m *Manager) applyWeight(ctx context.Context, r *Rollout) error {
	rt, ok := m.routers[r.App]
	if !ok {
		return fmt.Errorf("no router for application %s", r.App)
	}
	if err := rt.SetWeight(ctx, r.Weight); err != nil {
		return fmt.Errorf("set canary weight %d%%: %w", r.Weight, err)
	}
	m.metrics.weight.WithLabelValues(r.App).Set(float64(r.Weight))
	return nil
}

func stepEventID(r *Rollout, i int) string { return "step:" + r.ID + ":" + strconv.Itoa(i) }

func (m *Manager) publishStep(ctx context.Context, r *Rollout) error {
	cause := "promote:" + r.ID
	if r.Step > 0 {
		cause = stepEventID(r, r.Step-1)
	}
	ev, err := events.NewCanaryStepped(m.meta(r, stepEventID(r, r.Step), cause), events.CanaryStep{
		RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact,
		Stable: r.Stable, Step: r.Step, Weight: r.Weight,
	})
	if err != nil {
		return err
	}
	_, err = m.bus.Publish(ctx, ev)
	return err
}

// complete ends r as the new stable release.
func (m *Manager) complete(ctx context.Context, r *Rollout, app policy.App) error {
	unlock := m.lockApp(r.App)
	now := m.now().UTC()
	r.Phase, r.FinishedAt, r.UpdatedAt, r.Reason = PhaseCompleted, now, now, "all steps passed"
	err := m.store.saveRollout(ctx, r)
	unlock()
	if errors.Is(err, errConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	m.metrics.rollouts.WithLabelValues(string(PhaseCompleted)).Inc()
	if err := m.finish(ctx, r); err != nil {
		return err
	}
	return errDone
}

// finish carries out the end of a rollout. It is idempotent, and Start runs
// it again for a rollout that ended while the deployer was killed.
//
//   - completed: the stable slot runs the candidate and takes all traffic;
//     the release is recorded and announced.
//   - rolled back: all traffic is on the stable slot (the instant part was
//     done when the rollout was aborted); the rollback is announced.
//
// Then the application's queued candidate, if any, starts.
func (m *Manager) finish(ctx context.Context, r *Rollout) error {
	app, ok := m.policy.Current().App(r.App)
	if !ok {
		return fmt.Errorf("application %s is no longer in the policy", r.App)
	}
	switch r.Phase {
	case PhaseCompleted:
		if m.opts.Workload != nil {
			if err := m.opts.Workload.Deploy(ctx, app, SlotStable, r.Artifact); err != nil {
				return fmt.Errorf("deploy the release to the stable slot: %w", err)
			}
		}
		r.Weight = 0
		if err := m.applyWeight(ctx, r); err != nil {
			return err
		}
		ev, err := events.NewReleaseCompleted(m.meta(r, "release:"+r.ID, stepEventID(r, len(r.Steps)-1)), events.Release{
			RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact, Previous: r.Stable,
		})
		if err != nil {
			return err
		}
		if _, err := m.bus.Publish(ctx, ev); err != nil {
			return err
		}
	case PhaseRolledBack:
		if err := m.publishRollback(ctx, r); err != nil {
			return err
		}
	default:
		return fmt.Errorf("rollout %s is %s, not finished", r.ID, r.Phase)
	}
	m.active.CompareAndDelete(r.App, r.ID)
	var next *Candidate
	state, err := m.store.updateApp(ctx, r.App, func(a *AppState) (bool, error) {
		if a.Active != r.ID {
			return false, nil
		}
		if r.Phase == PhaseCompleted && (a.Live() == nil || a.Live().RolloutID != r.ID) {
			a.Releases = append(a.Releases, Release{Artifact: r.Artifact, RolloutID: r.ID, ChainID: r.ChainID, At: r.FinishedAt})
		}
		a.Active, next = "", a.Queued
		if next != nil {
			a.Active, a.Queued = rolloutID(r.App, next.ScanEventID), nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if next != nil {
		return m.begin(ctx, app, state.Active, *next, state)
	}
	return nil
}
