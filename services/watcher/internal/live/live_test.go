package live_test

import (
	"errors"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

const (
	digest  = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	canaryP = "pkg:oci/shop@sha256%3A2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae?repository_url=registry.example.com/shop"
	stableP = "pkg:oci/shop@sha256%3Aaaaa?repository_url=registry.example.com/shop"
)

func step(t *testing.T, rollout string, n, weight int) cloudevents.Event {
	t.Helper()
	return must(t)(events.NewCanaryStepped(events.Meta{Source: "/rampart/deployer", App: "shop", ChainID: "chain-" + rollout,
		Time: time.Date(2026, 5, 1, 12, 0, n, 0, time.UTC)},
		events.CanaryStep{RolloutID: rollout, App: "shop", Environment: "prod", ArtifactID: canaryP, Stable: stableP, Step: n, Weight: weight}))
}

func rollback(t *testing.T, rollout string) cloudevents.Event {
	t.Helper()
	return must(t)(events.NewRollback(events.Meta{Source: "/rampart/deployer", App: "shop"},
		events.Rollback{RolloutID: rollout, App: "shop", Environment: "prod", ArtifactID: stableP, From: canaryP}))
}

func release(t *testing.T, rollout string) cloudevents.Event {
	t.Helper()
	return must(t)(events.NewReleaseCompleted(events.Meta{Source: "/rampart/deployer", App: "shop"},
		events.Release{RolloutID: rollout, App: "shop", Environment: "prod", ArtifactID: canaryP, Previous: stableP}))
}

// must fails the test on a constructor's error.
func must(t *testing.T) func(cloudevents.Event, error) cloudevents.Event {
	return func(ev cloudevents.Event, err error) cloudevents.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
}

func TestApply(t *testing.T) {
	type apply struct {
		ev     cloudevents.Event
		seq    uint64
		change live.Change
	}
	tests := []struct {
		name     string
		events   func(t *testing.T) []apply
		live     bool
		rollout  string
		weight   int
		released string
	}{
		{"a step makes a canary live", func(t *testing.T) []apply {
			return []apply{{step(t, "r1", 0, 5), 1, live.Started}}
		}, true, "r1", 5, ""},
		{"the next step is a new window", func(t *testing.T) []apply {
			return []apply{{step(t, "r1", 0, 5), 1, live.Started}, {step(t, "r1", 1, 25), 2, live.Started}}
		}, true, "r1", 25, ""},
		{"a rollback ends it", func(t *testing.T) []apply {
			return []apply{{step(t, "r1", 0, 5), 1, live.Started}, {rollback(t, "r1"), 2, live.Ended}}
		}, false, "", 0, ""},
		{"a release ends it and becomes the live release", func(t *testing.T) []apply {
			return []apply{{step(t, "r1", 3, 100), 1, live.Started}, {release(t, "r1"), 2, live.Ended}}
		}, false, "", 0, "r1"},
		{"a weight-0 step ends it", func(t *testing.T) []apply {
			return []apply{{step(t, "r1", 0, 5), 1, live.Started}, {step(t, "r1", 1, 0), 2, live.Ended}}
		}, false, "", 0, ""},
		{"a repeated or older delivery changes nothing", func(t *testing.T) []apply {
			return []apply{{step(t, "r1", 1, 25), 5, live.Started}, {step(t, "r1", 1, 25), 5, live.Unchanged},
				{rollback(t, "r1"), 3, live.Unchanged}}
		}, true, "r1", 25, ""},
		{"a rollback of another rollout leaves the canary", func(t *testing.T) []apply {
			return []apply{{step(t, "r2", 0, 5), 4, live.Started}, {rollback(t, "r1"), 6, live.Unchanged}}
		}, true, "r2", 5, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := live.NewSet()
			for i, a := range tc.events(t) {
				change, _, err := s.Apply(a.ev, a.seq)
				if err != nil {
					t.Fatal(err)
				}
				if change != a.change {
					t.Fatalf("event %d: %s, want %s", i, change, a.change)
				}
			}
			c, ok := s.Canary("shop")
			if ok != tc.live || c.RolloutID != tc.rollout || c.Weight != tc.weight {
				t.Fatalf("canary %+v live=%v", c, ok)
			}
			if ok && (c.Digest != digest || c.ChainID != "chain-"+tc.rollout || c.StepEventID == "" || c.Since.IsZero()) {
				t.Fatalf("canary fields %+v", c)
			}
			r, ok := s.Release("shop")
			if (tc.released != "") != ok || r.RolloutID != tc.released {
				t.Fatalf("release %+v", r)
			}
		})
	}
}

func TestApplyRejects(t *testing.T) {
	ev, err := events.NewAnomaly(events.Meta{Source: "/x", App: "shop"}, events.Anomaly{Target: events.TargetNone, App: "shop", Environment: "prod", Rule: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := live.NewSet().Apply(ev, 1); !errors.Is(err, live.ErrNotLive) {
		t.Fatalf("err = %v", err)
	}
}

func TestDigestOf(t *testing.T) {
	for in, want := range map[string]string{
		canaryP:                      digest,
		"pkg:oci/shop@sha256:abc":    "sha256:abc",
		"pkg:oci/shop?x=1":           "",
		"pkg:oci/shop@v1.2":          "",
		"pkg:oci/shop@sha256%ZZ?x=1": "",
	} {
		if got := live.DigestOf(in); got != want {
			t.Errorf("DigestOf(%q) = %q, want %q", in, got, want)
		}
	}
}
