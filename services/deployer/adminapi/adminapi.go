// Package adminapi is the deployer's operator API as its clients see it:
// the rollout record it serves, the request and error bodies, and a typed
// Client. The deployer stores rollouts in this very form, so what an
// operator reads is what the deployer acts on.
//
//	GET  /deployer/rollouts                  []Rollout, newest first
//	GET  /deployer/rollouts/{id}             Rollout
//	POST /deployer/rollouts/{id}/{action}    ActionRequest → Rollout
//
// Every request carries a bearer token: the viewer's may GET, the
// operator's may also POST actions (403 for the viewer's, 401 without a
// valid one). An action's body is JSON, with Content-Type application/json
// (415 otherwise). Every answer that is not 200 carries an Error.
package adminapi

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// PathRollouts is where the API lives on the deployer's HTTP server.
const PathRollouts = "/deployer/rollouts"

// Phase is where a rollout is.
type Phase string

const (
	// PhaseProgressing: stepping through the canary weights.
	PhaseProgressing Phase = "progressing"
	// PhasePaused: held at its step by an operator.
	PhasePaused Phase = "paused"
	// PhaseCompleted: the candidate is the stable release.
	PhaseCompleted Phase = "completed"
	// PhaseRolledBack: aborted; traffic is back on the stable release.
	PhaseRolledBack Phase = "rolledback"
)

// Terminal reports whether nothing more happens to a rollout in phase p.
func (p Phase) Terminal() bool { return p == PhaseCompleted || p == PhaseRolledBack }

// Rollout is one candidate's way to 100% (or back to 0).
type Rollout struct {
	ID          string        `json:"id"`
	App         string        `json:"app"`
	Environment string        `json:"environment"`
	Artifact    string        `json:"artifact"`         // candidate purl
	Stable      string        `json:"stable,omitempty"` // purl the canary is measured against and returns to
	ChainID     string        `json:"chainId,omitempty"`
	ScanEventID string        `json:"scanEventId"`
	Steps       []int         `json:"steps"`
	Pause       time.Duration `json:"pause"`
	// Step is the index of the current step in Steps; -1 before the first.
	Step          int       `json:"step"`
	Weight        int       `json:"weight"`
	StepStartedAt time.Time `json:"stepStartedAt"`
	Phase         Phase     `json:"phase"`
	// Reason says why the rollout ended or was paused.
	Reason    string `json:"reason,omitempty"`
	AnomalyID string `json:"anomalyId,omitempty"`
	// Trigger and TrafficAtAbort describe a rollback.
	Trigger        *events.Anomaly `json:"trigger,omitempty"`
	TrafficAtAbort int             `json:"trafficAtAbort,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
	FinishedAt     time.Time       `json:"finishedAt,omitzero"`
	// CanaryDeployedAt and StableDeployedAt are when the deployer's
	// workload was told to run the candidate in each slot (unset without a
	// workload); the wait for the slot to serve it counts from there.
	CanaryDeployedAt time.Time `json:"canaryDeployedAt,omitzero"`
	StableDeployedAt time.Time `json:"stableDeployedAt,omitzero"`
	// TraceParent is the W3C traceparent of the delivery of the verdict
	// the rollout came from: its events are published in that trace.
	TraceParent string `json:"traceParent,omitempty"`
}

// Action is what an operator asks of a rollout.
type Action string

// The actions.
const (
	// ActionPause holds the rollout at its current step.
	ActionPause Action = "pause"
	// ActionResume continues a paused rollout; the step's pause starts again.
	ActionResume Action = "resume"
	// ActionPromote ends the current step's pause now.
	ActionPromote Action = "promote"
	// ActionAbort rolls the rollout back as an anomaly would.
	ActionAbort Action = "abort"
)

// Actions lists every action, in the order the CLI shows them.
var Actions = []Action{ActionPause, ActionResume, ActionAbort, ActionPromote}

// Actor is who asked for an action, as the deployer records it in the
// intervention event the ledger keeps.
type Actor struct {
	// Name is the role and a fingerprint of the credential presented
	// ("operator sha256:0123456789ab"), never the credential itself.
	Name string
	// Via is the way the action came in: "api" or "console".
	Via string
}

// OperatorActor is the Actor of an action asked for with the operator token
// via "api" or "console". The fingerprint is the first 48 bits of the
// token's SHA-256: enough to tell one token (or a rotation of it) from
// another in the record, and nothing that helps guess a random token.
func OperatorActor(token, via string) Actor {
	sum := sha256.Sum256([]byte(token))
	return Actor{Name: "operator sha256:" + hex.EncodeToString(sum[:6]), Via: via}
}

// ActionRequest is the body of an action; it may be empty.
type ActionRequest struct {
	// Reason is recorded with a pause or an abort.
	Reason string `json:"reason,omitempty"`
}

// Error is the body of every answer that is not 200.
type Error struct {
	Error string `json:"error"`
}
