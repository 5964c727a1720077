package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
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

// toStage deploys a candidate to a pre-production stage and announces it
// (environment.modified): the scanner checks it there. The candidate is
// recorded as the stage's before it is announced, so its verdict always
// finds it. Everything here is repeatable: a redelivered verdict deploys
// the same artifact again and announces the same event id, which the bus
// keeps once.
func (m *Manager) toStage(ctx context.Context, app policy.App, stage policy.Stage, artifact string, verdict cloudevents.Event) error {
	log := m.log.With("app", app.Name, "stage", stage.Name, "artifact", artifact)
	if m.opts.Workload != nil {
		if err := m.opts.Workload.Deploy(ctx, app, StageSlot(stage.Name), artifact); err != nil {
			return fmt.Errorf("deploy %s to stage %s: %w", artifact, stage.Name, err)
		}
	}
	sum := sha256.Sum256([]byte(verdict.ID() + "\x00" + stage.Name))
	id := "stage:" + app.Name + "-" + hex.EncodeToString(sum[:6])
	rec := Staged{App: app.Name, Stage: stage.Name, Artifact: artifact, VerdictID: verdict.ID(), EventID: id, At: m.now().UTC()}
	if _, _, err := m.staged.Update(ctx, stageKey(app.Name, stage.Name), func(s *Staged, _ bool) (bool, error) {
		if s.EventID == id {
			return false, nil // recorded before this delivery
		}
		*s = rec
		return true, nil
	}); err != nil {
		return fmt.Errorf("record stage %s: %w", stage.Name, err)
	}
	ev, err := events.NewStageDeployed(events.Meta{ID: id, Source: Source, Time: m.now(), ChainID: events.ChainID(verdict), CausedBy: verdict.ID(), App: app.Name},
		events.StageDeployment{App: app.Name, Stage: stage.Name, Environment: stage.Environment, ArtifactID: artifact, URL: stage.URL, VerdictID: verdict.ID()})
	if err != nil {
		return err
	}
	if _, err := m.bus.Publish(ctx, ev); err != nil {
		return fmt.Errorf("announce stage %s: %w", stage.Name, err)
	}
	m.metrics.stages.WithLabelValues(stage.Name, "deployed").Inc()
	log.Info("candidate deployed to a stage; its checks decide what follows")
	return nil
}

// stageVerdict acts on a verdict about a candidate in a stage: a passing
// stage verdict for the candidate the stage runs sends it to the next
// stage, or after the last to production (the canary, as an image verdict
// does for an application without stages); a blocking one stops it there.
// It returns the request for the application's owner, if any.
func (m *Manager) stageVerdict(ctx context.Context, app policy.App, s events.Scan, ev cloudevents.Event, received time.Time) (*Request, error) {
	log := m.log.With("app", app.Name, "environment", s.Environment, "artifact", s.Target)
	stage, ok := app.StageForEnvironment(s.Environment)
	if !ok {
		log.Warn("verdict about an environment that is no stage of the application; ignored")
		return nil, nil
	}
	if s.Outcome != events.OutcomePass {
		m.metrics.stages.WithLabelValues(stage.Name, "stopped").Inc()
		log.Info("candidate stopped in its stage", "stage", stage.Name, "outcome", s.Outcome, "reason", s.Reason)
		// Should it have gone on already (an uploaded report that comes
		// late), its rollout in flight is halted.
		return &Request{Kind: KindBlocked, ID: ev.ID(), App: app.Name, Received: received,
			Candidate: &Candidate{Artifact: s.Target, ScanEventID: ev.ID(), ChainID: events.ChainID(ev)},
			Reason:    "stage " + stage.Name + " verdict " + s.Outcome + ": " + s.Reason}, nil
	}
	if s.TargetKind != verdictStage {
		return nil, nil // an uploaded report that finds nothing promotes nothing
	}
	e, err := m.staged.Get(ctx, stageKey(app.Name, stage.Name))
	switch {
	case errors.Is(err, kv.ErrNotFound):
		log.Warn("passing verdict for a stage that runs nothing; ignored", "stage", stage.Name)
		return nil, nil
	case err != nil:
		return nil, err
	case e.Value.Artifact != s.Target:
		log.Info("passing verdict for a candidate no longer in its stage; ignored", "stage", stage.Name, "stage_runs", e.Value.Artifact)
		return nil, nil
	}
	m.metrics.stages.WithLabelValues(stage.Name, "passed").Inc()
	if next, ok := app.Next(stage.Name); ok {
		return nil, m.toStage(ctx, app, next, s.Target, ev)
	}
	// Production: the candidate's rollout id derives from this verdict, and
	// its promotion names it as the cause.
	return &Request{Kind: KindVerdict, ID: ev.ID(), App: app.Name, Received: received,
		Candidate: &Candidate{Artifact: s.Target, ScanEventID: ev.ID(), ChainID: events.ChainID(ev)}}, nil
}

func newStaged(b jetstream.KeyValue) *kv.Store[Staged] { return kv.New[Staged](b) }
