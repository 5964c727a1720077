package compliance_test

import (
	"fmt"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/tree"
)

// benchEntries is the ledger size of the benchmarks: a busy month of a
// small team (about 70 changes a day of 10 events each, for a month, is
// 20,000; this is a tenth of it, to keep `make bench` short).
const benchEntries = 2000

// benchLedger is a real ledger holding benchEntries canary steps.
func benchLedger(b *testing.B) *ledgerFixture {
	b.Helper()
	evs := make([]cloudevents.Event, 0, benchEntries)
	t0 := time.Now().UTC()
	for i := range benchEntries {
		ev, err := events.NewCanaryStepped(events.Meta{ID: fmt.Sprintf("step-%d", i), Source: "/bench", Time: t0, ChainID: fmt.Sprintf("c-%d", i/10), App: "shop"},
			events.CanaryStep{RolloutID: fmt.Sprintf("r-%d", i/10), App: "shop", Environment: "prod", ArtifactID: "pkg:oci/shop@sha256%3Aaa", Step: i % 10, Weight: 10})
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return startLedger(b, evs)
}

// BenchmarkProofs compares the two ways of proving a report's entries once
// they are read: computing every inclusion proof from a tree built over the
// entries (what Collect does; the baseline), and asking the ledger's API
// for each entry's proof. It reports the ledger API's time as a ratio of
// the baseline's.
func BenchmarkProofs(b *testing.B) {
	f := benchLedger(b)
	note, err := f.client.LatestCheckpoint(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	cp, err := f.verifier.Open(note)
	if err != nil {
		b.Fatal(err)
	}
	var raw []client.Entry
	for from := int64(0); from < cp.Size; {
		page, err := f.client.Entries(b.Context(), from, cp.Size)
		if err != nil {
			b.Fatal(err)
		}
		raw = append(raw, page.Entries...)
		from += int64(len(page.Entries))
	}
	local := func() {
		t := tree.New()
		for _, e := range raw {
			if _, err := t.AppendHash(tlog.RecordHash(e.Entry)); err != nil {
				b.Fatal(err)
			}
		}
		for i := range cp.Size {
			if _, err := t.InclusionProof(i, cp.Size); err != nil {
				b.Fatal(err)
			}
		}
	}
	api := func() {
		for i := range cp.Size {
			if _, err := f.client.InclusionProof(b.Context(), i, cp.Size); err != nil {
				b.Fatal(err)
			}
		}
	}
	var base, other time.Duration
	b.ResetTimer()
	for b.Loop() {
		s := time.Now()
		local()
		base += time.Since(s)
		s = time.Now()
		api()
		other += time.Since(s)
	}
	b.ReportMetric(float64(other)/float64(base), "api/local")
	b.ReportMetric(float64(base.Microseconds())/float64(b.N), "local-µs/op")
}

// BenchmarkReport measures building and verifying a report of the whole
// ledger against the baseline of verifying the ledger itself (`rampart
// ledger verify`), which reads and checks the same entries.
func BenchmarkReport(b *testing.B) {
	f := benchLedger(b)
	var base, build, check time.Duration
	var size int
	for b.Loop() {
		s := time.Now()
		if _, err := f.client.Verify(b.Context(), f.verifier); err != nil {
			b.Fatal(err)
		}
		base += time.Since(s)
		s = time.Now()
		r, err := compliance.Collect(b.Context(), f.client, f.verifier, compliance.Options{From: f.from, To: time.Now().Add(time.Second)})
		if err != nil {
			b.Fatal(err)
		}
		data, err := compliance.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		build += time.Since(s)
		size = len(data)
		s = time.Now()
		if _, err := compliance.Verify(data, f.verifier); err != nil {
			b.Fatal(err)
		}
		check += time.Since(s)
	}
	b.ReportMetric(float64(build)/float64(base), "build/ledger-verify")
	b.ReportMetric(float64(check)/float64(base), "report-verify/ledger-verify")
	b.ReportMetric(float64(size)/benchEntries, "json-bytes/entry")
}
