package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/kv"
)

// Target kinds of the verdicts about a stage (the scanner's stagecheck).
const (
	// verdictStage: the scanner's checks of a candidate in a stage; a pass
	// lets the candidate go on.
	verdictStage = "stage"
	// verdictDAST: a DAST report uploaded about a stage; it can stop a
	// candidate, never promote one.
	verdictDAST = "dast"
)

// StageSlot is the slot of a pre-production stage: a Workload deploys the
// candidate there before the stage's checks run.
func StageSlot(stage string) Slot { return Slot("stage:" + stage) }

// StageOf is the stage of a stage slot; ok is false for the stable and
// canary slots.
func StageOf(slot Slot) (stage string, ok bool) {
	return strings.CutPrefix(string(slot), "stage:")
}

// Staged is what runs in one pre-production stage of an application: the
// last candidate deployed there. A stage verdict about any other artifact
// is stale (a newer candidate took the stage) and promotes nothing.
type Staged struct {
	App       string    `json:"app"`
	Stage     string    `json:"stage"`
	Artifact  string    `json:"artifact"`
	VerdictID string    `json:"verdictId"` // the verdict that admitted it
	EventID   string    `json:"eventId"`   // its stage deployment event
	At        time.Time `json:"at"`
}

func stageKey(app, stage string) string { return "stage." + app + "." + stage }

func newStaged(b jetstream.KeyValue) *kv.Store[Staged] { return kv.New[Staged](b) }

// stageRequest turns a verdict about a candidate in a stage into a request
// for the application's owner: a passing stage verdict sends the candidate
// on (KindStagePassed); a blocking one, or a blocking uploaded report,
// stops it (KindBlocked: should it have gone on already, its rollout in
// flight is halted). A passing uploaded report promotes nothing.
func (m *Manager) stageRequest(app policy.App, s events.Scan, ev cloudevents.Event, received time.Time) (*Request, error) {
	log := m.log.With("app", app.Name, "environment", s.Environment, "artifact", s.Target)
	stage, ok := app.StageForEnvironment(s.Environment)
	if !ok {
		log.Warn("verdict about an environment that is no stage of the application; ignored")
		return nil, nil
	}
	c := &Candidate{Artifact: s.Target, ScanEventID: ev.ID(), ChainID: events.ChainID(ev)}
	switch {
	case s.Outcome != events.OutcomePass:
		m.metrics.stages.WithLabelValues(stage.Name, "stopped").Inc()
		log.Info("candidate stopped in its stage", "stage", stage.Name, "outcome", s.Outcome, "reason", s.Reason)
		return &Request{Kind: KindBlocked, ID: ev.ID(), App: app.Name, Received: received, Candidate: c,
			Reason: "stage " + stage.Name + " verdict " + s.Outcome + ": " + s.Reason}, nil
	case s.TargetKind != verdictStage:
		return nil, nil
	}
	return &Request{Kind: KindStagePassed, ID: ev.ID(), App: app.Name, Stage: stage.Name, Received: received, Candidate: c}, nil
}

// StageRunner is a Workload that runs only some of an application's
// pre-production stages (those its policy names); the others are deployed
// by other means. A Workload that is not a StageRunner runs them all.
type StageRunner interface {
	RunsStage(app policy.App, stage string) bool
}

// Staging is a candidate deployed to a stage whose workload has not yet
// reported it served there; the stage is announced once it is.
type Staging struct {
	Stage      string    `json:"stage"`
	Candidate  Candidate `json:"candidate"`
	DeployedAt time.Time `json:"deployedAt"`
}

// stageWorkload is the workload that runs stage of app, nil for none.
func (o *owner) stageWorkload(app policy.App, stage string) Workload {
	w := o.workload()
	if sr, ok := w.(StageRunner); ok && !sr.RunsStage(app, stage) {
		return nil
	}
	return w
}

// toStage deploys a candidate to a pre-production stage and announces it
// (environment.modified): the scanner checks it there. With a workload that
// reports progress (Awaiter), the announcement waits until the stage serves
// the candidate (stepStages): checks of the version before would judge the
// wrong artifact. Everything here is repeatable: a request applied again
// deploys the same artifact again and announces the same event id, which
// the bus keeps once.
func (o *owner) toStage(ctx context.Context, c Candidate, stageName string) error {
	app, err := o.policyApp()
	if err != nil {
		return err
	}
	stage, ok := app.Stage(stageName)
	if !ok {
		o.log.Warn("candidate for a stage the policy no longer has; dropped", "stage", stageName, "artifact", c.Artifact)
		return nil
	}
	w := o.stageWorkload(app, stage.Name)
	if w == nil {
		return o.announceStage(ctx, app, stage, c)
	}
	ctx = WithChange(ctx, Change{ChainID: c.ChainID})
	if err := w.Deploy(ctx, app, StageSlot(stage.Name), c.Artifact); err != nil {
		return fmt.Errorf("deploy %s to stage %s: %w", c.Artifact, stage.Name, err)
	}
	if _, ok := w.(Awaiter); !ok {
		return o.announceStage(ctx, app, stage, c)
	}
	deployed := Staging{Stage: stage.Name, Candidate: c, DeployedAt: o.m.now().UTC()}
	o.log.Info("candidate deployed to a stage; announced once it serves it", "stage", stage.Name, "artifact", c.Artifact)
	return o.updateApp(ctx, func(a *AppState) bool {
		a.Staging = slices.DeleteFunc(a.Staging, func(s Staging) bool { return s.Stage == stage.Name }) // the latest wins
		a.Staging = append(a.Staging, deployed)
		return true
	})
}

// stepStages announces each stage whose workload now serves the candidate
// deployed there, and drops a candidate whose stage will never serve it
// (its progress deadline passed): it goes no further. Stages still on
// their way are looked at again after the workload poll interval.
func (o *owner) stepStages(ctx context.Context, p *pass) (result, error) {
	pending := slices.Clone(o.state.Value.Staging)
	if len(pending) == 0 {
		return resultSuccess, nil
	}
	app, err := o.policyApp()
	if err != nil {
		return resultEmpty, err
	}
	for _, s := range pending {
		stage, ok := app.Stage(s.Stage)
		aw, awaits := o.stageWorkload(app, s.Stage).(Awaiter)
		done := !ok || !awaits // the policy no longer has the stage, or no longer a workload for it
		if !done {
			pr, err := aw.Progress(ctx, app, StageSlot(s.Stage), s.Candidate.Artifact, s.DeployedAt)
			switch {
			case err != nil:
				return resultEmpty, fmt.Errorf("progress of stage %s: %w", s.Stage, err)
			case pr.Available:
				if err := o.announceStage(ctx, app, stage, s.Candidate); err != nil {
					return resultEmpty, err
				}
				done = true
			case pr.Failed != "":
				// Announced, so that the ledger holds why the chain stops
				// here; the scanner checks nothing for it.
				id := stageEventID("stage-failed:", app.Name, s.Candidate, s.Stage)
				if err := o.publishStage(ctx, app, stage, s.Candidate, id, pr.Failed); err != nil {
					return resultEmpty, err
				}
				o.m.metrics.stages.WithLabelValues(s.Stage, "failed").Inc()
				o.log.Error("candidate not served by its stage; it goes no further", "stage", s.Stage, "artifact", s.Candidate.Artifact, "reason", pr.Failed)
				done = true
			default:
				o.log.Debug("waiting for the stage to serve the candidate", "stage", s.Stage, "waiting", pr.Waiting)
				p.requeue(p.now.Add(o.m.opts.WorkloadPoll))
			}
		}
		if done {
			if err := o.updateApp(ctx, func(a *AppState) bool {
				n := len(a.Staging)
				a.Staging = slices.DeleteFunc(a.Staging, func(x Staging) bool {
					return x.Stage == s.Stage && x.Candidate.ScanEventID == s.Candidate.ScanEventID
				})
				return len(a.Staging) != n
			}); err != nil {
				return resultEmpty, err
			}
		}
	}
	return resultSuccess, nil
}

// announceStage records c as what stage runs and announces it. The
// candidate is recorded as the stage's before it is announced, so its
// verdict always finds it.
func (o *owner) announceStage(ctx context.Context, app policy.App, stage policy.Stage, c Candidate) error {
	id := stageEventID("stage:", app.Name, c, stage.Name)
	rec := Staged{App: app.Name, Stage: stage.Name, Artifact: c.Artifact, VerdictID: c.ScanEventID, EventID: id, At: o.m.now().UTC()}
	if _, _, err := o.m.staged.Update(ctx, stageKey(app.Name, stage.Name), func(s *Staged, _ bool) (bool, error) {
		if s.EventID == id {
			return false, nil // recorded before this request was applied again
		}
		*s = rec
		return true, nil
	}); err != nil {
		return fmt.Errorf("record stage %s: %w", stage.Name, err)
	}
	if err := o.publishStage(ctx, app, stage, c, id, ""); err != nil {
		return err
	}
	o.m.metrics.stages.WithLabelValues(stage.Name, "deployed").Inc()
	o.log.Info("candidate deployed to a stage; its checks decide what follows", "stage", stage.Name, "artifact", c.Artifact)
	return nil
}

// stageEventID is the id of what is announced about candidate c in stage
// of app (prefix "stage:" for its deployment, "stage-failed:" for its
// failure): the same for the same verdict and stage, so that a pass
// repeated announces once.
func stageEventID(prefix, app string, c Candidate, stage string) string {
	sum := sha256.Sum256([]byte(c.ScanEventID + "\x00" + stage))
	return prefix + app + "-" + hex.EncodeToString(sum[:6])
}

// publishStage announces c in stage under event id: deployed there, or,
// with a failure, never served by it.
func (o *owner) publishStage(ctx context.Context, app policy.App, stage policy.Stage, c Candidate, id, failed string) error {
	ev, err := events.NewStageDeployed(events.Meta{ID: id, Source: Source, Time: o.m.now(), ChainID: c.ChainID, CausedBy: c.ScanEventID, App: app.Name},
		events.StageDeployment{App: app.Name, Stage: stage.Name, Environment: stage.Environment, ArtifactID: c.Artifact, URL: stage.URL,
			VerdictID: c.ScanEventID, Failed: failed})
	if err != nil {
		return err
	}
	// In the release's trace: the span of the verdict's delivery.
	bus.SetTraceParent(&ev, c.TraceParent)
	if _, err := o.m.bus.Publish(ctx, ev); err != nil {
		return fmt.Errorf("announce stage %s: %w", stage.Name, err)
	}
	return nil
}

// stagePassed sends a candidate that passed a stage on: to the next stage,
// or after the last to the production canary, as a passing image verdict
// does for an application without stages (the rollout id derives from the
// stage's verdict, which the promotion names as its cause). A verdict
// about a candidate the stage no longer runs is stale and does nothing.
func (o *owner) stagePassed(ctx context.Context, c Candidate, stageName string) error {
	e, err := o.m.staged.Get(ctx, stageKey(o.app, stageName))
	switch {
	case errors.Is(err, kv.ErrNotFound):
		o.log.Warn("passing verdict for a stage that runs nothing; ignored", "stage", stageName, "artifact", c.Artifact)
		return nil
	case err != nil:
		return err
	case e.Value.Artifact != c.Artifact:
		o.log.Info("passing verdict for a candidate no longer in its stage; ignored", "stage", stageName, "artifact", c.Artifact, "stage_runs", e.Value.Artifact)
		return nil
	}
	o.m.metrics.stages.WithLabelValues(stageName, "passed").Inc()
	app, err := o.policyApp()
	if err != nil {
		return err
	}
	if next, ok := app.Next(stageName); ok {
		return o.toStage(ctx, c, next.Name)
	}
	return o.offer(ctx, c)
}
