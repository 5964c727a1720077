package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Kind is what a request asks of an application's owner.
type Kind string

// The kinds of request.
const (
	// KindVerdict: a verified passing verdict; its candidate starts, or
	// waits for the active rollout (the latest candidate wins).
	KindVerdict Kind = "verdict"
	// KindBlocked: a failing verdict (a re-scan); the rollout in flight that
	// delivers the artifact is rolled back.
	KindBlocked Kind = "blocked"
	// KindAnomaly: an anomaly on the canary; its rollout is rolled back.
	KindAnomaly Kind = "anomaly"
	// KindLiveAnomaly: an anomaly on the live release; it returns to the
	// previous clean release when there is one.
	KindLiveAnomaly Kind = "live-anomaly"
	// KindStage: a passing image verdict of an application with stages;
	// its candidate is deployed to the first stage (Request.Stage).
	KindStage Kind = "stage"
	// KindStagePassed: a passing verdict of the stage Request.Stage; its
	// candidate goes to the next stage, or to the production canary.
	KindStagePassed Kind = "stage-passed"
	// The operator's actions on one rollout.
	KindPause   = Kind(adminapi.ActionPause)
	KindResume  = Kind(adminapi.ActionResume)
	KindPromote = Kind(adminapi.ActionPromote)
	KindAbort   = Kind(adminapi.ActionAbort)
)

// Request is one thing an application's owner is asked to do. It is
// applied by the owner alone, in the order received; applying it twice
// changes nothing more than applying it once.
type Request struct {
	Kind Kind `json:"kind"`
	// ID names the request: the event it came from, or the operator's
	// action; the rollback announces it as its cause.
	ID  string `json:"id"`
	App string `json:"app"`
	// Rollout is the rollout the request is about; "" for the one active.
	Rollout   string          `json:"rollout,omitempty"`
	Candidate *Candidate      `json:"candidate,omitempty"`
	Anomaly   *events.Anomaly `json:"anomaly,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	// Stage is the pre-production stage of KindStage and KindStagePassed.
	Stage string `json:"stage,omitempty"`
	// Actor and Via say who asked for an operator's action, and how
	// (adminapi.Actor).
	Actor string `json:"actor,omitempty"`
	Via   string `json:"via,omitempty"`
	// Received is when the deployer got it; the rollback latency is
	// measured from it.
	Received time.Time `json:"received"`
}

// errUnknownRequest is a request of a kind this deployer does not know (one
// left by a newer replica); it is dropped.
var errUnknownRequest = errors.New("unknown request kind")

// cutsTraffic reports whether r ends a canary: its weight goes to 0 before
// anything else is done.
func (r Request) cutsTraffic() bool {
	return r.Kind == KindAnomaly || r.Kind == KindAbort || r.Kind == KindBlocked
}

// apply carries out req. The owner holds the lease. It returns the rollout
// the request was about, when there is one.
func (o *owner) apply(ctx context.Context, req Request) (*Rollout, error) {
	app := &o.state.Value
	switch req.Kind {
	case KindVerdict:
		return nil, o.offer(ctx, *req.Candidate)
	case KindBlocked:
		return nil, o.halt(ctx, req.Candidate.Artifact, req.Reason, req.ID, req.Received)
	case KindAnomaly:
		id := req.Rollout
		if id == "" {
			id = app.Active
		}
		if o.active == nil || o.active.Value.ID != id || o.active.Value.Phase.Terminal() {
			if id != "" {
				o.m.metrics.duplicateAnomalies.Inc()
			}
			return nil, nil // that canary has ended already: one rollback per rollout
		}
		return nil, o.abort(ctx, *req.Anomaly, req.ID, req.Received)
	case KindLiveAnomaly:
		return nil, o.rollbackLive(ctx, *req.Anomaly, req.ID, req.Received)
	case KindStage:
		return nil, o.toStage(ctx, *req.Candidate, req.Stage)
	case KindStagePassed:
		return nil, o.stagePassed(ctx, *req.Candidate, req.Stage)
	}

	// An operator's action on the active rollout.
	if o.active == nil || o.active.Value.ID != req.Rollout {
		e, err := o.m.store.rollout(ctx, req.Rollout)
		if err != nil {
			return nil, err
		}
		return &e.Value, fmt.Errorf("%w (%s)", ErrFinished, e.Value.Phase)
	}
	r := o.active.Value
	if r.Phase.Terminal() {
		return &r, fmt.Errorf("%w (%s)", ErrFinished, r.Phase)
	}
	before := r.Phase
	now := o.m.now().UTC()
	switch req.Kind {
	case KindPause:
		r.Phase, r.Reason = PhasePaused, "paused by operator: "+req.Reason
	case KindResume:
		r.Phase, r.Reason, r.StepStartedAt = PhaseProgressing, "", now
	case KindPromote:
		r.Phase, r.Reason, r.StepStartedAt = PhaseProgressing, "", time.Time{}
	case KindAbort:
		trigger := events.Anomaly{Target: events.TargetCanary, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact,
			RolloutID: r.ID, Rule: "operator", Origin: "operator", Description: "aborted by operator: " + req.Reason, DetectedAt: now}
		if err := o.abort(ctx, trigger, "operator:"+r.ID, req.Received); err != nil {
			return nil, err
		}
		done := o.active.Value
		return &done, o.publishIntervention(ctx, req, &done, before, now)
	default:
		return nil, fmt.Errorf("%w %q", errUnknownRequest, req.Kind)
	}
	r.UpdatedAt = now
	if err := o.saveRollout(ctx, r); err != nil {
		return nil, err
	}
	return &r, o.publishIntervention(ctx, req, &r, before, now)
}

// publishIntervention announces an operator's action once it is applied to
// r, which was in phase before. An error leaves the request in the inbox:
// applying it again changes nothing more, and the announcement, under the
// same event id, is published at most once more.
func (o *owner) publishIntervention(ctx context.Context, req Request, r *Rollout, before Phase, applied time.Time) error {
	actor, via := req.Actor, req.Via
	if actor == "" { // a request left by a deployer from before actors were recorded
		actor, via = "operator (credential not recorded)", "api"
	}
	ev, err := events.NewInterventionApplied(o.m.meta(r, "intervention:"+req.ID, "promote:"+r.ID), events.Intervention{
		InterventionID: req.ID, Action: string(req.Kind), App: r.App, Environment: r.Environment, RolloutID: r.ID,
		ArtifactID: r.Artifact, Reason: req.Reason, Actor: actor, Via: via,
		PhaseBefore: string(before), PhaseAfter: string(r.Phase), RequestedAt: req.Received.UTC(), AppliedAt: applied,
	})
	return o.announce(ctx, r, ev, err)
}

// offer takes a passing candidate: it starts at once when nothing is
// active or waiting, and otherwise becomes the queued candidate (the latest
// wins), begun by the start step when the active rollout has ended. A
// verdict delivered again for the active rollout, or for the live artifact,
// changes nothing.
func (o *owner) offer(ctx context.Context, c Candidate) error {
	a := &o.state.Value
	switch {
	case a.Active == rolloutID(o.app, c.ScanEventID):
		return nil
	case a.Active == "" && a.Live() != nil && a.Live().Artifact == c.Artifact:
		o.log.Info("artifact is already live", "artifact", c.Artifact)
		return nil
	case a.Active == "" && a.Queued == nil:
		return o.begin(ctx, c)
	}
	return o.updateApp(ctx, func(a *AppState) bool {
		if a.Queued != nil && a.Queued.ScanEventID == c.ScanEventID {
			return false
		}
		o.log.Info("candidate queued", "artifact", c.Artifact, "active", a.Active)
		a.Queued = &c
		return true
	})
}
