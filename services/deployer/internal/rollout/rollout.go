// Package rollout is the deployer's core: each rollout is a state machine
// persisted in a JetStream key-value bucket and updated by revision
// (compare-and-swap), so a restarted deployer resumes it, a duplicate anomaly
// rolls back once, and two replicas never both act on one rollout.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
)

// Bucket holds rollout and application state.
const Bucket = "RAMPART_ROLLOUTS"

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
	// Owner is the deployer process driving the rollout until LeaseUntil.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`

	revision uint64
}

// Release is one release of an application that reached 100%.
type Release struct {
	Artifact  string    `json:"artifact"`
	RolloutID string    `json:"rolloutId"`
	ChainID   string    `json:"chainId,omitempty"`
	At        time.Time `json:"at"`
	// Vulnerable is set when a later re-scan found a Critical or High
	// finding in it; such a release is never a rollback target.
	Vulnerable bool `json:"vulnerable,omitempty"`
}

// Candidate is a verified passing verdict waiting for the active rollout of
// its application to finish.
type Candidate struct {
	Artifact    string `json:"artifact"`
	ScanEventID string `json:"scanEventId"`
	ChainID     string `json:"chainId,omitempty"`
}

// AppState is what the deployer knows of one application.
type AppState struct {
	App string `json:"app"`
	// Active is the rollout in progress, if any.
	Active string `json:"active,omitempty"`
	// Releases are the completed releases, oldest first; the last is live.
	Releases []Release `json:"releases,omitempty"`
	// Queued is the next candidate, started when Active ends.
	Queued *Candidate `json:"queued,omitempty"`

	revision uint64
}

// Live is the live release, if any.
func (a *AppState) Live() *Release {
	if len(a.Releases) == 0 {
		return nil
	}
	return &a.Releases[len(a.Releases)-1]
}

// Store reads and writes rollout state by revision.
type Store struct {
	kv jetstream.KeyValue
}

// ErrNotFound is returned for a rollout or application with no state.
var ErrNotFound = errors.New("not found")

// errConflict is a lost compare-and-swap: someone else wrote first.
var errConflict = errors.New("state changed concurrently")

func rolloutKey(id string) string { return "rollout." + id }
func appKey(app string) string    { return "app." + app }

func (s *Store) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// put writes v at key if the key is still at revision rev (0: must not exist).
func (s *Store) put(ctx context.Context, key string, rev uint64, v any) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = s.kv.Create(ctx, key, data)
	} else {
		newRev, err = s.kv.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return 0, errConflict
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return newRev, nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Rollout reads one rollout.
func (s *Store) Rollout(ctx context.Context, id string) (*Rollout, error) {
	var r Rollout
	rev, err := s.get(ctx, rolloutKey(id), &r)
	if err != nil {
		return nil, err
	}
	r.revision = rev
	return &r, nil
}

// App reads one application's state; a new application has an empty one.
func (s *Store) App(ctx context.Context, app string) (*AppState, error) {
	var a AppState
	rev, err := s.get(ctx, appKey(app), &a)
	if errors.Is(err, ErrNotFound) {
		return &AppState{App: app}, nil
	}
	if err != nil {
		return nil, err
	}
	a.revision = rev
	return &a, nil
}

// saveRollout writes r if nobody else changed it since it was read.
func (s *Store) saveRollout(ctx context.Context, r *Rollout) error {
	rev, err := s.put(ctx, rolloutKey(r.ID), r.revision, r)
	if err != nil {
		return err
	}
	r.revision = rev
	return nil
}

func (s *Store) saveApp(ctx context.Context, a *AppState) error {
	rev, err := s.put(ctx, appKey(a.App), a.revision, a)
	if err != nil {
		return err
	}
	a.revision = rev
	return nil
}

// updateRollout applies change to the latest rollout state and writes it,
// re-reading and re-applying on a lost race. change returns false to leave
// the rollout as it is.
func (s *Store) updateRollout(ctx context.Context, id string, change func(r *Rollout) (bool, error)) (*Rollout, bool, error) {
	for attempt := 0; attempt < 10; attempt++ {
		r, err := s.Rollout(ctx, id)
		if err != nil {
			return nil, false, err
		}
		ok, err := change(r)
		if err != nil || !ok {
			return r, false, err
		}
		err = s.saveRollout(ctx, r)
		if errors.Is(err, errConflict) {
			continue
		}
		return r, err == nil, err
	}
	return nil, false, fmt.Errorf("rollout %s: %w ten times in a row", id, errConflict)
}

// updateApp is updateRollout for application state.
func (s *Store) updateApp(ctx context.Context, app string, change func(a *AppState) (bool, error)) (*AppState, error) {
	for attempt := 0; attempt < 10; attempt++ {
		a, err := s.App(ctx, app)
		if err != nil {
			return nil, err
		}
		ok, err := change(a)
		if err != nil || !ok {
			return a, err
		}
		err = s.saveApp(ctx, a)
		if errors.Is(err, errConflict) {
			continue
		}
		return a, err
	}
	return nil, fmt.Errorf("application %s: %w ten times in a row", app, errConflict)
}

// List returns every rollout, newest first.
func (s *Store) List(ctx context.Context) ([]*Rollout, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "rollout.>")
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	var out []*Rollout
	for key := range lister.Keys() {
		r, err := s.Rollout(ctx, key[len("rollout."):])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Rollout) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}
