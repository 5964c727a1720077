package events

import (
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// TypeDrillFinished is the result of a chaos drill (`rampart chaos run`):
// a fault injected on purpose into an application's canary, and whether the
// pipeline detected it, rolled back and paged as the drill expected. The
// ledger records it as evidence that the rollback works.
const TypeDrillFinished = "dev.cdeventsx.rampart-drill.finished.0.1.0"

// KindDrill is the subject kind of drill results: rampart.drill.<app>.
const KindDrill = "drill"

// Drill outcomes.
const (
	DrillPassed = "passed"
	DrillFailed = "failed"
)

// Drill is one chaos drill's result.
type Drill struct {
	DrillID     string `json:"drillId"`
	Name        string `json:"name"` // the experiment's name in its chaos file
	App         string `json:"app"`
	Environment string `json:"environment"`
	Stage       string `json:"stage,omitempty"`
	RolloutID   string `json:"rolloutId,omitempty"` // the canary the fault was injected into
	// Fault is the fault's kind (http-errors, latency, memory, siem,
	// kill-deployer, kill-watcher); FaultDetail its parameters.
	Fault       string `json:"fault"`
	FaultDetail string `json:"faultDetail,omitempty"`
	Outcome     string `json:"outcome"` // passed or failed
	// Reason says which expectation failed; empty when the drill passed.
	Reason string `json:"reason,omitempty"`
	// DetectedInMs is fault start → the anomaly; RolledBackInMs fault
	// start → the rollback (canary weight 0). Absent when it never came.
	DetectedInMs   *int64 `json:"detectedInMs,omitempty"`
	RolledBackInMs *int64 `json:"rolledBackInMs,omitempty"`
	// DowntimeMs is how long a killed component (Fault kill-deployer or
	// kill-watcher) was to stay down; RestartedInMs fault start → it ran
	// again. Absent for other faults, and RestartedInMs when it never did.
	DowntimeMs    int64  `json:"downtimeMs,omitempty"`
	RestartedInMs *int64 `json:"restartedInMs,omitempty"`
	// Pages is how many pages the rollout's incident sent.
	Pages      int    `json:"pages"`
	AnomalyID  string `json:"anomalyId,omitempty"`
	RollbackID string `json:"rollbackId,omitempty"`
	// Expectations, as the chaos file set them.
	ExpectRollbackWithinMs int64 `json:"expectRollbackWithinMs"`
	ExpectPages            int   `json:"expectPages"`
	ExpectLedger           bool  `json:"expectLedger,omitempty"`
	// LedgerRecorded: the rollback was found in the ledger.
	LedgerRecorded bool      `json:"ledgerRecorded,omitempty"`
	StartedAt      time.Time `json:"startedAt"`
	FinishedAt     time.Time `json:"finishedAt"`
}

// NewDrillFinished builds a rampart-drill.finished event; its subject is
// the drill.
func NewDrillFinished(m Meta, d Drill) (cloudevents.Event, error) {
	if d.DrillID == "" || d.Name == "" || d.App == "" || d.Environment == "" || d.Fault == "" {
		return cloudevents.Event{}, errors.New("drill: drillId, name, app, environment and fault are required")
	}
	if d.Outcome != DrillPassed && d.Outcome != DrillFailed {
		return cloudevents.Event{}, fmt.Errorf("drill: outcome %q is not %s or %s", d.Outcome, DrillPassed, DrillFailed)
	}
	if d.Outcome == DrillFailed && d.Reason == "" {
		return cloudevents.Event{}, errors.New("drill: a failed drill needs a reason")
	}
	content := map[string]any{"environment": Ref{ID: d.Environment}, "fault": d.Fault, "outcome": d.Outcome}
	return newEvent(m, TypeDrillFinished, d.DrillID, content, d)
}

// DrillOf reads a drill-finished event.
func DrillOf(ev cloudevents.Event) (Drill, error) {
	var d Drill
	_, err := decodeCustom(ev, &d, TypeDrillFinished)
	return d, err
}

// Text is the drill's one-line summary.
func (d Drill) Text() string {
	ms := func(p *int64) string {
		if p == nil {
			return "never"
		}
		return fmt.Sprintf("%d ms", *p)
	}
	s := fmt.Sprintf("chaos drill %s (%s): %s; ", d.Name, d.Fault, d.Outcome)
	if d.DowntimeMs > 0 {
		s += fmt.Sprintf("restarted in %s, ", ms(d.RestartedInMs))
	}
	s += fmt.Sprintf("detected in %s, rolled back in %s, %d page(s)", ms(d.DetectedInMs), ms(d.RolledBackInMs), d.Pages)
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	return s
}
