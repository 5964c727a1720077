package events

import (
	"errors"
	"fmt"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// TypeInterventionApplied is an operator's action on a rollout (pause,
// resume, promote past its holds, abort) as the deployer applied it, with
// the credential that asked for it. The ledger records it, so that every
// change a person made to a release by hand is in the tamper-evident record
// beside the ones the pipeline made.
const TypeInterventionApplied = "dev.cdeventsx.rampart-intervention.applied.0.1.0"

// KindIntervention is the subject kind of operator actions:
// rampart.intervention.<app>.
const KindIntervention = "intervention"

// The operator's actions on a rollout.
var InterventionActions = []string{"pause", "resume", "promote", "abort"}

// Intervention is one operator action a deployer applied.
type Intervention struct {
	// InterventionID names the request; it is the event's subject id.
	InterventionID string `json:"interventionId"`
	Action         string `json:"action"` // one of InterventionActions
	App            string `json:"app"`
	Environment    string `json:"environment"`
	RolloutID      string `json:"rolloutId"`
	ArtifactID     string `json:"artifactId"`
	Reason         string `json:"reason,omitempty"`
	// Actor is who asked: the role and a fingerprint of the credential it
	// presented ("operator sha256:…"), never the credential itself.
	Actor string `json:"actor"`
	// Via is the way the action came in: "api" (the operator API, the
	// CLI) or "console".
	Via string `json:"via"`
	// PhaseBefore and PhaseAfter are the rollout's phase around the
	// action.
	PhaseBefore string    `json:"phaseBefore"`
	PhaseAfter  string    `json:"phaseAfter"`
	RequestedAt time.Time `json:"requestedAt"`
	AppliedAt   time.Time `json:"appliedAt"`
}

// NewInterventionApplied builds a rampart-intervention.applied event; its
// subject is the intervention.
func NewInterventionApplied(m Meta, iv Intervention) (cloudevents.Event, error) {
	if iv.InterventionID == "" || iv.App == "" || iv.Environment == "" || iv.RolloutID == "" || iv.Actor == "" || iv.Via == "" {
		return cloudevents.Event{}, errors.New("intervention: interventionId, app, environment, rolloutId, actor and via are required")
	}
	if !slices.Contains(InterventionActions, iv.Action) {
		return cloudevents.Event{}, fmt.Errorf("intervention: action %q is not one of %v", iv.Action, InterventionActions)
	}
	content := map[string]any{"environment": Ref{ID: iv.Environment}, "action": iv.Action, "actor": iv.Actor}
	return newEvent(m, TypeInterventionApplied, iv.InterventionID, content, iv)
}

// InterventionOf reads an intervention-applied event.
func InterventionOf(ev cloudevents.Event) (Intervention, error) {
	var iv Intervention
	_, err := decodeCustom(ev, &iv, TypeInterventionApplied)
	return iv, err
}

// Text is the intervention's one-line summary.
func (iv Intervention) Text() string {
	s := fmt.Sprintf("operator %s of rollout %s by %s via %s (%s → %s)", iv.Action, iv.RolloutID, iv.Actor, iv.Via, iv.PhaseBefore, iv.PhaseAfter)
	if iv.Reason != "" {
		s += ": " + iv.Reason
	}
	return s
}
