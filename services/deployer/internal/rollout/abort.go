package rollout

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// abort rolls the active rollout back: the canary's weight goes to 0 first
// (again, if the request's instant part did it already: that changes
// nothing), then the rollback is recorded. The finish step announces it.
// Only a rollout in flight is aborted, so a duplicate never rolls back twice.
func (o *owner) abort(ctx context.Context, trigger events.Anomaly, anomalyID string, received time.Time) error {
	r := o.active.Value
	if err := o.setWeight(ctx, 0); err != nil {
		return fmt.Errorf("rollback %s: %w", r.ID, err)
	}
	if !received.IsZero() {
		o.m.metrics.rollbackLatency.Observe(time.Since(received).Seconds())
	}
	now := o.m.now().UTC()
	r.TrafficAtAbort = r.Weight
	r.Phase, r.Weight, r.FinishedAt, r.UpdatedAt = PhaseRolledBack, 0, now, now
	r.Reason, r.AnomalyID, r.Trigger = trigger.Description, anomalyID, &trigger
	if err := o.saveRollout(ctx, r); err != nil {
		return err
	}
	o.m.metrics.rollouts.WithLabelValues(string(PhaseRolledBack)).Inc()
	o.log.Warn("rolled back", "rollout", r.ID, "trigger", trigger.Rule, "traffic_at_abort", r.TrafficAtAbort)
	return nil
}

// halt rolls the rollout in flight back if it delivers artifact: a verdict
// or a re-scan found the artifact unsafe after it was promoted.
func (o *owner) halt(ctx context.Context, artifact, reason, causeID string, received time.Time) error {
	r := o.active
	if r == nil || r.Value.Phase.Terminal() || r.Value.Artifact != artifact {
		return nil
	}
	trigger := events.Anomaly{Target: events.TargetCanary, App: o.app, Environment: r.Value.Environment, ArtifactID: artifact,
		RolloutID: r.Value.ID, Rule: "scan", Origin: "scanner", Description: reason, DetectedAt: o.m.now().UTC()}
	return o.abort(ctx, trigger, causeID, received)
}

func (o *owner) publishRollback(ctx context.Context, r *Rollout) error {
	var trigger events.Anomaly
	if r.Trigger != nil {
		trigger = *r.Trigger
	}
	returnTo := r.Stable
	if returnTo == "" {
		returnTo = r.Artifact // a first release has nothing to return to; the canary gets no traffic
	}
	ev, err := events.NewRollback(o.m.meta(r, "rollback:"+r.ID, r.AnomalyID), events.Rollback{
		RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: returnTo, From: r.Artifact,
		TrafficAtAbort: r.TrafficAtAbort, Trigger: trigger, AnomalyID: r.AnomalyID,
	})
	return o.announce(ctx, r, ev, err)
}

// rollbackLive handles an anomaly against the live release (a new Critical
// CVE in the live digest): a promotion of that digest in flight is halted,
// and the live release is rolled back to the latest release that is not
// known to be vulnerable. Without one traffic stays, and the notifier pages
// on the anomaly itself.
func (o *owner) rollbackLive(ctx context.Context, a events.Anomaly, anomalyID string, received time.Time) error {
	if a.ArtifactID != "" {
		if err := o.halt(ctx, a.ArtifactID, a.Description, anomalyID, received); err != nil {
			return err
		}
	}
	var target *Release
	var live Release
	err := o.updateApp(ctx, func(s *AppState) bool {
		target = nil
		l := s.Live()
		if l == nil || (a.ArtifactID != "" && l.Artifact != a.ArtifactID) || l.Vulnerable {
			return false
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
			back.At = o.m.now().UTC()
			s.Releases = append(s.Releases, back)
		}
		return true
	})
	if err != nil {
		return err
	}
	if target == nil {
		if live.Artifact != "" {
			o.log.Warn("live release has a new finding and no clean release to return to; paging without touching traffic", "artifact", a.ArtifactID)
		}
		return nil
	}
	app, err := o.policyApp()
	if err != nil {
		return err
	}
	if w := o.workload(); w != nil {
		if err := w.Deploy(WithChange(ctx, Change{RolloutID: live.RolloutID, ChainID: live.ChainID}), app, SlotStable, target.Artifact); err != nil {
			return fmt.Errorf("redeploy %s to the stable slot: %w", target.Artifact, err)
		}
	}
	if !received.IsZero() {
		o.m.metrics.rollbackLatency.Observe(time.Since(received).Seconds())
	}
	r := &Rollout{ID: live.RolloutID, App: o.app, Environment: app.Environment, ChainID: live.ChainID}
	ev, err := events.NewRollback(o.m.meta(r, "rollback:"+live.RolloutID+":live", anomalyID), events.Rollback{
		RolloutID: live.RolloutID, App: o.app, Environment: app.Environment, ArtifactID: target.Artifact,
		From: live.Artifact, TrafficAtAbort: 100, Trigger: a, AnomalyID: anomalyID,
	})
	return o.announce(ctx, r, ev, err)
}
