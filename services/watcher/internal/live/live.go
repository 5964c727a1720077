// Package live is the watcher's view of what is live: the canary each
// application is running, if any, and the release it last completed. A Set
// is built from canary-step, rollback and release-completed events, applied
// in stream order; a Tracker keeps one current from the RAMPART stream,
// rebuilding it after a restart, and reports each canary that starts or
// ends.
package live

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
)

// Canary is a canary taking traffic: one step of one rollout.
type Canary struct {
	App         string
	Environment string
	RolloutID   string
	ArtifactID  string // purl of the canary version
	Digest      string // sha256:… from ArtifactID, "" when it names none
	Stable      string // purl of the stable version, if the step said
	Step        int
	Weight      int
	ChainID     string
	// StepEventID is the canary-step event: what an anomaly is caused by.
	StepEventID string
	// TraceParent is the step event's traceparent: an anomaly found in
	// the step is published in the release's trace.
	TraceParent string
	// Since is when the step began (the step event's time): the start of
	// the analysis window.
	Since time.Time
}

// Key identifies one step of one rollout: a new key means a new analysis
// window.
func (c Canary) Key() string { return fmt.Sprintf("%s/%d", c.RolloutID, c.Step) }

// Release is an application's live stable release.
type Release struct {
	App         string
	Environment string
	RolloutID   string
	ArtifactID  string
	Digest      string
	ChainID     string
}

// Change says what applying an event did.
type Change int

// Changes.
const (
	// Unchanged: the event was already applied, is older than what is
	// known, or changes nothing live.
	Unchanged Change = iota
	// Started: a canary began taking traffic, or moved to another step.
	Started
	// Ended: the application's canary is no longer live.
	Ended
)

func (c Change) String() string {
	return [...]string{"unchanged", "started", "ended"}[c]
}

// ErrNotLive is returned for an event that is not one the live set reads.
var ErrNotLive = errors.New("not a canary-step, rollback or release event")

// Set is the live canaries and releases by application. It is safe for
// concurrent use.
type Set struct {
	mu       sync.RWMutex
	canaries map[string]Canary
	releases map[string]Release
	// seq is the stream sequence of the last event applied per
	// application: older or repeated deliveries are ignored, so a set can be
	// rebuilt from a snapshot and then fed the durable consumer's backlog.
	seq map[string]uint64
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{canaries: map[string]Canary{}, releases: map[string]Release{}, seq: map[string]uint64{}}
}

// Apply applies ev, found at stream sequence seq. It returns what changed and
// the canary concerned (the new one for Started, the old one for Ended). An
// event that cannot be read returns an error and changes nothing.
func (s *Set) Apply(ev cloudevents.Event, seq uint64) (Change, Canary, error) {
	switch events.KindOf(ev.Type()) {
	case events.KindCanaryStep:
		st, err := events.CanaryStepOf(ev)
		if err != nil {
			return Unchanged, Canary{}, err
		}
		return s.step(ev, st, seq)
	case events.KindRollback:
		rb, err := events.RollbackOf(ev)
		if err != nil {
			return Unchanged, Canary{}, err
		}
		return s.end(rb.App, rb.RolloutID, seq, nil)
	case events.KindRelease:
		r, err := events.ReleaseOf(ev)
		if err != nil {
			return Unchanged, Canary{}, err
		}
		rel := Release{App: r.App, Environment: r.Environment, RolloutID: r.RolloutID, ArtifactID: r.ArtifactID,
			Digest: DigestOf(r.ArtifactID), ChainID: events.ChainID(ev)}
		return s.end(r.App, r.RolloutID, seq, &rel)
	}
	return Unchanged, Canary{}, fmt.Errorf("%w: %s", ErrNotLive, ev.Type())
}

func (s *Set) step(ev cloudevents.Event, st events.CanaryStep, seq uint64) (Change, Canary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.seq[st.App] {
		return Unchanged, Canary{}, nil
	}
	s.seq[st.App] = seq
	old, had := s.canaries[st.App]
	if st.Weight == 0 {
		// A step back to no traffic: nothing of the canary is live.
		if !had || old.RolloutID != st.RolloutID {
			return Unchanged, Canary{}, nil
		}
		delete(s.canaries, st.App)
		return Ended, old, nil
	}
	c := Canary{
		App: st.App, Environment: st.Environment, RolloutID: st.RolloutID, ArtifactID: st.ArtifactID,
		Digest: DigestOf(st.ArtifactID), Stable: st.Stable, Step: st.Step, Weight: st.Weight,
		ChainID: events.ChainID(ev), StepEventID: ev.ID(), Since: ev.Time(),
	}
	c.TraceParent, _ = ev.Extensions()["traceparent"].(string)
	s.canaries[st.App] = c
	return Started, c, nil
}

// end ends app's canary if it belongs to rollout, and records a completed
// release.
func (s *Set) end(app, rollout string, seq uint64, rel *Release) (Change, Canary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.seq[app] {
		return Unchanged, Canary{}, nil
	}
	s.seq[app] = seq
	if rel != nil {
		s.releases[app] = *rel
	}
	old, had := s.canaries[app]
	// A rollback or release of another rollout (an older one, replayed late)
	// leaves the current canary alone.
	if !had || old.RolloutID != rollout {
		return Unchanged, Canary{}, nil
	}
	delete(s.canaries, app)
	return Ended, old, nil
}

// Canary returns app's live canary.
func (s *Set) Canary(app string) (Canary, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.canaries[app]
	return c, ok
}

// Release returns app's live stable release.
func (s *Set) Release(app string) (Release, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.releases[app]
	return r, ok
}

// Canaries returns every live canary.
func (s *Set) Canaries() []Canary {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Canary, 0, len(s.canaries))
	for _, c := range s.canaries {
		out = append(out, c)
	}
	return out
}

// DigestOf returns the "sha256:…" digest an OCI purl names as its version
// (pkg:oci/name@sha256%3A…?repository_url=…), or "" when it names none.
func DigestOf(purl string) string {
	_, rest, ok := strings.Cut(purl, "@")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	v, err := url.PathUnescape(rest)
	if err != nil || !strings.HasPrefix(v, "sha256:") {
		return ""
	}
	return v
}
