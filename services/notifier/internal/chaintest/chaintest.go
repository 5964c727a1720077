// Package chaintest builds the events of one release, from commit to
// rollback, with fixed ids and clocks, and serves them as the ledger's query
// API does. Tests only.
package chaintest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// T0 is the time of a release's first event.
var T0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Digests of the stable and the canary version.
const (
	StableDigest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	CanaryDigest = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	Repository   = "127.0.0.1:5000/demo/shop"
)

// Release is the events of one release of app "shop" in "prod" that was
// rolled back, in the order they happened.
type Release struct {
	ChainID   string
	RolloutID string
	// Events are commit, artifact, scan, promote, two canary steps, the
	// anomaly and the rollback.
	Events   []cloudevents.Event
	Rollback cloudevents.Event
	Scan     cloudevents.Event
}

// Purl is the package URL of the shop image with digest.
func Purl(digest, tag string) string {
	o, err := events.NewOCI(Repository, digest, tag)
	if err != nil {
		panic(err)
	}
	return o.String()
}

func ptr(f float64) *float64 { return &f }

// NewRelease builds the release's events. Ids are "<rolloutID>-<step>", so
// two releases in one test do not collide.
func NewRelease(t testing.TB, chainID, rolloutID string) Release {
	t.Helper()
	stable, canary := Purl(StableDigest, "v1"), Purl(CanaryDigest, "v2")
	at := func(d time.Duration) time.Time { return T0.Add(d) }
	meta := func(step string, d time.Duration, causedBy string) events.Meta {
		m := events.Meta{ID: rolloutID + "-" + step, Source: "/rampart/test", Time: at(d), ChainID: chainID, App: "shop"}
		if causedBy != "" {
			m.CausedBy = rolloutID + "-" + causedBy
		}
		return m
	}
	anomaly := events.Anomaly{Target: events.TargetCanary, App: "shop", Environment: "prod", ArtifactID: canary, RolloutID: rolloutID,
		Rule: "http-5xx-ratio", Origin: "scrape", Description: "canary 5xx ratio 3.42% over 1% (117 requests)",
		Observed: ptr(0.0342), Threshold: ptr(0.01), DetectedAt: at(41*time.Second + 500*time.Millisecond)}
	build := []func() (cloudevents.Event, error){
		func() (cloudevents.Event, error) {
			return events.NewCommit(meta("commit", 0, ""), events.Commit{Repository: "github.com/acme/shop", SHA: "4f1c2e9a7b3d5f60718293a4b5c6d7e8f9012345", Ref: "refs/heads/main", Author: "ada"})
		},
		func() (cloudevents.Event, error) {
			return events.NewArtifactPushed(meta("artifact", 20*time.Second, "commit"), events.Artifact{Purl: canary, Registry: "127.0.0.1:5000", Repository: "demo/shop", Digest: CanaryDigest, Tag: "v2"})
		},
		func() (cloudevents.Event, error) {
			return events.NewScanFinished(meta("scan", 23*time.Second, "artifact"), events.Scan{Target: canary, TargetKind: "image", Environment: "prod", Outcome: events.OutcomePass,
				Reason: "no finding at or above high", Counts: map[string]int{"MEDIUM": 1, "LOW": 3}, DBVersion: "2026-11-26T00:00:00Z",
				Findings: []events.Finding{
					{ID: "CVE-2026-1001", Package: "busybox", InstalledVersion: "1.36.1-r1", FixedVersion: "1.36.1-r2", Severity: "LOW"},
					{ID: "CVE-2026-1000", Package: "zlib", InstalledVersion: "1.3-r0", FixedVersion: "1.3.1-r0", Severity: "MEDIUM"},
					{ID: "CVE-2026-1002", Package: "busybox", InstalledVersion: "1.36.1-r1", Severity: "LOW"},
					{ID: "CVE-2026-1003", Package: "musl", InstalledVersion: "1.2.4-r0", Severity: "LOW"},
				}})
		},
		func() (cloudevents.Event, error) {
			return events.NewPromoted(meta("promote", 24*time.Second, "scan"), events.Promotion{RolloutID: rolloutID, App: "shop", Environment: "prod", ArtifactID: canary, Previous: stable, Steps: []int{5, 25, 50, 100}, ScanID: rolloutID + "-scan"})
		},
		func() (cloudevents.Event, error) {
			return events.NewCanaryStepped(meta("step1", 24*time.Second+100*time.Millisecond, "promote"), events.CanaryStep{RolloutID: rolloutID, App: "shop", Environment: "prod", ArtifactID: canary, Stable: stable, Step: 0, Weight: 5})
		},
		func() (cloudevents.Event, error) {
			return events.NewCanaryStepped(meta("step2", 34*time.Second+100*time.Millisecond, "step1"), events.CanaryStep{RolloutID: rolloutID, App: "shop", Environment: "prod", ArtifactID: canary, Stable: stable, Step: 1, Weight: 25})
		},
		func() (cloudevents.Event, error) {
			return events.NewAnomaly(meta("anomaly", 41*time.Second+500*time.Millisecond, "step2"), anomaly)
		},
		func() (cloudevents.Event, error) {
			return events.NewRollback(meta("rollback", 41*time.Second+512*time.Millisecond, "anomaly"), events.Rollback{RolloutID: rolloutID, App: "shop", Environment: "prod",
				ArtifactID: stable, From: canary, TrafficAtAbort: 25, Trigger: anomaly, AnomalyID: rolloutID + "-anomaly"})
		},
	}
	r := Release{ChainID: chainID, RolloutID: rolloutID}
	for i, b := range build {
		ev, err := b()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		r.Events = append(r.Events, ev)
	}
	r.Scan = r.Events[2]
	r.Rollback = r.Events[len(r.Events)-1]
	return r
}

// Entries makes the ledger entries for evs, indexes from first on, each
// recorded 3ms after the event happened.
func Entries(t testing.TB, first uint64, evs ...cloudevents.Event) []*entry.Entry {
	t.Helper()
	out := make([]*entry.Entry, len(evs))
	for i, ev := range evs {
		structured, err := events.Structured(ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = &entry.Entry{
			Index:      first + uint64(i),
			RecordedAt: ev.Time().Add(3 * time.Millisecond).UTC(),
			Subject:    events.SubjectOf(ev),
			StreamSeq:  first + uint64(i) + 1,
			Kind:       entry.KindEvent,
			EventID:    ev.ID(),
			Source:     ev.Source(),
			Type:       ev.Type(),
			ChainID:    events.ChainID(ev),
			Event:      structured,
		}
	}
	return out
}

// Ledger is a fake of the ledger service's query API, as much as the
// notifier reads: GET /ledger/chains/{chain} over the entries appended to
// it, in the wire form of pkg/ledger/client (without signatures, which
// readers of chains do not check).
type Ledger struct {
	// URL is the base URL to give the notifier.
	URL string
	srv *httptest.Server

	mu      sync.Mutex
	entries []*entry.Entry
}

// NewLedger starts a fake ledger, closed when the test ends.
func NewLedger(t testing.TB) *Ledger {
	t.Helper()
	l := &Ledger{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ledger/chains/{chain}", l.serveChain)
	l.srv = httptest.NewServer(mux)
	l.URL = l.srv.URL
	t.Cleanup(l.srv.Close)
	return l
}

// Append records es, whose indexes must continue the ledger's.
func (l *Ledger) Append(t testing.TB, es ...*entry.Entry) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range es {
		if e.Index != uint64(len(l.entries)) {
			t.Fatalf("ledger entry %d appended at %d", e.Index, len(l.entries))
		}
		l.entries = append(l.entries, e)
	}
}

// Stop takes the ledger down: connections are refused from now on.
func (l *Ledger) Stop() { l.srv.Close() }

func (l *Ledger) serveChain(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := client.Entries{Size: int64(len(l.entries)), Entries: []client.Entry{}}
	for _, e := range l.entries {
		if e.ChainID != r.PathValue("chain") {
			continue
		}
		data, err := entry.Marshal(e)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out.Entries = append(out.Entries, client.Entry{Index: int64(e.Index), Entry: data})
	}
	if len(out.Entries) == 0 {
		http.Error(w, "no ledger entry has that chainId", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
