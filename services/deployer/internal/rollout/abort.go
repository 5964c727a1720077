package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

func (m *Manager) handleAnomaly(ctx context.Context, ev cloudevents.Event) error {
	received := time.Now()
	a, err := events.AnomalyOf(ev)
	if err != nil {
		return bus.Poison(err)
	}
	app, ok := m.policy.Current().App(a.App)
	if !ok {
		return nil
	}
	switch a.Target {
	case events.TargetCanary:
		if a.RolloutID != "" && m.cutTraffic(ctx, a.App, a.RolloutID, received) {
			received = time.Time{} // measured already
		}
		id := a.RolloutID
		if id == "" {
			state, err := m.store.App(ctx, a.App)
			if err != nil {
				return err
			}
			id = state.Active
		}
		if id == "" {
			return nil // nothing in flight: the canary already ended
		}
		err := m.abort(ctx, id, a, ev.ID(), received)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	case events.TargetRelease:
		return m.handleLiveAnomaly(ctx, app, a, ev.ID(), received)
	}
	return nil // TargetNone: recorded by the ledger, nothing to do
}

// cutTraffic sets the canary weight to 0 at once when rollout id is the one
// this process knows to be in flight for app: the anomaly's fast path,
// taken before any state is read. abort then records the rollback (and sets
// the weight again, which changes nothing). Weight 0 sends everything to the
// stable slot, so acting on a stale hint costs at most a canary step that
// the driver re-applies.
//
// It does not take the application's lock: a step being recorded at the same
// moment may raise the weight again, and abort's final SetWeight(0), made
// once the rollback is recorded and no step can follow, settles it.
func (m *Manager) cutTraffic(ctx context.Context, app, id string, received time.Time) bool {
	if active, ok := m.active.Load(app); !ok || active != id {
		return false
	}
	rt, ok := m.routers[app]
	if !ok {
		return false
	}
	if err := rt.SetWeight(ctx, 0); err != nil {
		m.log.Error("fast rollback: set canary weight 0", "app", app, "rollout", id, "err", err)
		return false
	}
	m.metrics.rollbackLatency.Observe(time.Since(received).Seconds())
	return true
}

// abort rolls rollout id back: the canary's weight goes to 0 first, then the
// rollback is recorded and announced. An anomaly for a rollout that already
// ended does nothing, so a duplicate never rolls back twice.
func (m *Manager) abort(ctx context.Context, id string, trigger events.Anomaly, anomalyID string, received time.Time) error {
	r, err := m.store.Rollout(ctx, id)
	if err != nil {
		return err
	}
	if r.Phase.Terminal() {
		m.metrics.duplicateAnomalies.Inc()
		return nil
	}
	unlock := m.lockApp(r.App)
	rt, ok := m.routers[r.App]
	if ok {
		// The instant part: traffic back to stable before anything else.
		if err := rt.SetWeight(ctx, 0); err != nil {
			unlock()
			return fmt.Errorf("rollback %s: set canary weight 0: %w", id, err)
		}
		if !received.IsZero() {
			m.metrics.rollbackLatency.Observe(time.Since(received).Seconds())
		}
	}
	var trafficAtAbort int
	r, changed, err := m.store.updateRollout(ctx, id, func(r *Rollout) (bool, error) {
		if r.Phase.Terminal() {
			return false, nil
		}
		trafficAtAbort = r.Weight
		now := m.now().UTC()
		r.Phase, r.Weight, r.FinishedAt, r.UpdatedAt = PhaseRolledBack, 0, now, now
		r.Reason, r.AnomalyID = trigger.Description, anomalyID
		r.TrafficAtAbort = trafficAtAbort
		r.Trigger = &trigger
		return true, nil
	})
	if err == nil && ok {
		// Once more, now that no step can follow: a step recorded just
		// before the abort may have raised the weight in between.
		err = rt.SetWeight(ctx, 0)
	}
	unlock()
	if err != nil {
		return err
	}
	if !changed {
		m.metrics.duplicateAnomalies.Inc()
		return nil
	}
	m.metrics.weight.WithLabelValues(r.App).Set(0)
	m.metrics.rollouts.WithLabelValues(string(PhaseRolledBack)).Inc()
	m.log.Warn("rolled back", "rollout", id, "app", r.App, "trigger", trigger.Rule, "traffic_at_abort", trafficAtAbort)
	m.wake(id)
	return m.finish(ctx, r)
}

func (m *Manager) publishRollback(ctx context.Context, r *Rollout) error {
	var trigger events.Anomaly
	if r.Trigger != nil {
		trigger = *r.Trigger
	}
	returnTo := r.Stable
	if returnTo == "" {
		returnTo = r.Artifact // a first release has nothing to return to; the canary gets no traffic
	}
	ev, err := events.NewRollback(m.meta(r, "rollback:"+r.ID, r.AnomalyID), events.Rollback{
		RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: returnTo, From: r.Artifact,
		TrafficAtAbort: r.TrafficAtAbort, Trigger: trigger, AnomalyID: r.AnomalyID,
	})
	if err != nil {
		return err
	}
	_, err = m.bus.Publish(ctx, ev)
	return err
}

// haltArtifact aborts the application's rollout in flight if it delivers
// artifact: a verdict or re-scan found it unsafe after it was promoted.
func (m *Manager) haltArtifact(ctx context.Context, app policy.App, artifact, causeID, reason string) error {
	state, err := m.store.App(ctx, app.Name)
	if err != nil || state.Active == "" {
		return err
	}
	r, err := m.store.Rollout(ctx, state.Active)
	if err != nil || r.Artifact != artifact {
		return err
	}
	trigger := events.Anomaly{Target: events.TargetCanary, App: app.Name, Environment: app.Environment, ArtifactID: artifact,
		RolloutID: r.ID, Rule: "scan", Origin: "scanner", Description: reason, DetectedAt: m.now().UTC()}
	return m.abort(ctx, r.ID, trigger, causeID, time.Now())
}

// handleLiveAnomaly handles an anomaly against the live release (a new
// Critical CVE in the live digest): a promotion of that digest in flight is
// halted, and the live release is rolled back to the previous release when
// that one is clean. Otherwise traffic stays and the notifier pages on the
// anomaly itself.
func (m *Manager) handleLiveAnomaly(ctx context.Context, app policy.App, a events.Anomaly, anomalyID string, received time.Time) error {
	if a.ArtifactID != "" {
		if err := m.haltArtifact(ctx, app, a.ArtifactID, anomalyID, a.Description); err != nil {
			return err
		}
	}
	var target *Release
	var live Release
	_, err := m.store.updateApp(ctx, app.Name, func(s *AppState) (bool, error) {
		target = nil
		l := s.Live()
		if l == nil || (a.ArtifactID != "" && l.Artifact != a.ArtifactID) || l.Vulnerable {
			return false, nil
		}
		live = *l
		for i := range s.Releases {
			if s.Releases[i].Artifact == l.Artifact {
				s.Releases[i].Vulnerable = true
			}
		}
		for i := len(s.Releases) - 1; i >= 0; i-- {
			if !s.Releases[i].Vulnerable {
				prev := s.Releases[i]
				target = &prev
				break
			}
		}
		if target != nil {
			// The previous release becomes live again.
			back := *target
			back.At = m.now().UTC()
			s.Releases = append(s.Releases, back)
		}
		return true, nil
	})
	if err != nil || target == nil {
		if err == nil {
			m.log.Warn("live release has a new finding and no clean release to return to; paging without touching traffic", "app", app.Name, "artifact", a.ArtifactID)
		}
		return err
	}
	if m.opts.Workload != nil {
		if err := m.opts.Workload.Deploy(ctx, app, SlotStable, target.Artifact); err != nil {
			return fmt.Errorf("redeploy %s to the stable slot: %w", target.Artifact, err)
		}
	}
	m.metrics.rollbackLatency.Observe(time.Since(received).Seconds())
	r := &Rollout{ID: live.RolloutID, App: app.Name, Environment: app.Environment, ChainID: live.ChainID}
	ev, err := events.NewRollback(m.meta(r, "rollback:"+live.RolloutID+":live", anomalyID), events.Rollback{
		RolloutID: live.RolloutID, App: app.Name, Environment: app.Environment, ArtifactID: target.Artifact,
		From: live.Artifact, TrafficAtAbort: 100, Trigger: a, AnomalyID: anomalyID,
	})
	if err != nil {
		return err
	}
	_, err = m.bus.Publish(ctx, ev)
	return err
}
