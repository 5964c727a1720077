package compliance_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// entries makes ledger entries, one per item, recorded a second apart from
// t0 with stream sequences seqs (consecutive when nil). An item is a
// CloudEvent or a *entry.Entry (a dead letter).
func entries(t *testing.T, t0 time.Time, seqs []uint64, items ...any) []compliance.ProvenEntry {
	t.Helper()
	var out []compliance.ProvenEntry
	for i, it := range items {
		e := &entry.Entry{Index: uint64(i), RecordedAt: t0.Add(time.Duration(i) * time.Second), Subject: "rampart.x", StreamSeq: uint64(i + 1)}
		if seqs != nil {
			e.StreamSeq = seqs[i]
		}
		switch x := it.(type) {
		case cloudevents.Event:
			b, err := events.Structured(x)
			if err != nil {
				t.Fatal(err)
			}
			e.Kind, e.EventID, e.Source, e.Type, e.ChainID, e.Event = entry.KindEvent, x.ID(), x.Source(), x.Type(), events.ChainID(x), b
		case *entry.Entry:
			e.Kind, e.Reason, e.OriginalSubject, e.Data = x.Kind, x.Reason, x.OriginalSubject, x.Data
		}
		b, err := entry.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, compliance.ProvenEntry{Index: int64(i), Entry: string(b)})
	}
	return out
}

// purl is the artifact of the tests' changes.
var purl = "pkg:oci/shop@sha256%3A" + strings.Repeat("d", 64)

// shopMeta returns the metadata of the application shop's events in
// chain, at t0, by event id.
func shopMeta(t0 time.Time, chain string) func(id string) events.Meta {
	return func(id string) events.Meta {
		return events.Meta{ID: id, Source: "/test", Time: t0, ChainID: chain, App: "shop"}
	}
}

// mustEvent returns a function that takes an event constructor's results
// and fails t on its error.
func mustEvent(t *testing.T) func(cloudevents.Event, error) cloudevents.Event {
	return func(e cloudevents.Event, err error) cloudevents.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
}

// TestExceptions builds reports from entries that go outside the normal
// path and checks that each is listed, with its kind and entries.
func TestExceptions(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ev := mustEvent(t)
	meta := func(id, chain string) events.Meta { return shopMeta(t0, chain)(id) }
	promote := ev(events.NewPromoted(meta("p", "c1"), events.Promotion{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: purl, Steps: []int{5, 100}}))
	step := ev(events.NewCanaryStepped(meta("s", "c1"), events.CanaryStep{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: purl, Weight: 5}))
	operator := events.Anomaly{Target: events.TargetCanary, App: "shop", Environment: "prod", RolloutID: "r1", Rule: "operator", Origin: "operator",
		Description: "aborted by operator: bad config", DetectedAt: t0}
	abort := ev(events.NewRollback(meta("rb", "c1"), events.Rollback{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: purl, From: purl, TrafficAtAbort: 5, Trigger: operator}))
	scanErr := ev(events.NewScanFinished(meta("se", "c2"), events.Scan{Target: purl, TargetKind: "image", Environment: "prod", Outcome: events.OutcomeError, Reason: "scan did not complete: pull failed"}))
	unacted := ev(events.NewAnomaly(meta("an", ""), events.Anomaly{Target: events.TargetNone, App: "shop", Environment: "prod", Rule: "siem", Origin: "siem", DetectedAt: t0}))
	ledgerAnomaly := ev(events.NewAnomaly(events.Meta{ID: "la", Source: "/ledger", Time: t0, App: "ledger"}, events.Anomaly{Target: events.TargetLedger, App: "ledger", Environment: "ledger",
		Rule: "ledger-foreign-message", Origin: "ledger", DetectedAt: t0}))
	dead := &entry.Entry{Kind: entry.KindDeadLetter, Reason: "not a CloudEvent", OriginalSubject: "rampart.x", Data: []byte("junk")}

	all := []any{promote, step, abort, scanErr, unacted, ledgerAnomaly, dead}
	in := compliance.Input{Period: compliance.Period{From: t0, To: t0.Add(time.Hour)}, Ledger: compliance.Ledger{Size: int64(len(all))},
		Entries: entries(t, t0, []uint64{1, 2, 3, 4, 5, 9, 10}, all...)}
	r, err := compliance.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range r.Exceptions {
		got = append(got, x.Kind+": "+x.Text)
	}
	kinds := map[string]int{}
	for _, x := range r.Exceptions {
		kinds[x.Kind]++
	}
	// promotion with no passing scan, rolled back without a page, scan error
	if kinds[compliance.ExceptionUnjudged] != 3 || kinds[compliance.ExceptionManual] != 1 || kinds[compliance.ExceptionUnacted] != 1 || kinds[compliance.ExceptionGap] != 3 {
		t.Errorf("exception kinds = %v:\n%s", kinds, strings.Join(got, "\n"))
	}
	for _, want := range []string{
		"aborted by an operator at 5% (aborted by operator: bad config); the ledger does not record who",
		"the image scan did not complete (scan did not complete: pull failed)",
		"nothing live matched; recorded, not acted on",
		"the ledger reported on its own record",
		"entry 6 is not a readable event: dead letter from rampart.x: not a CloudEvent",
		"RAMPART stream messages 6 to 8, between entries 4 and 5, have no ledger entry",
	} {
		found := false
		for _, x := range r.Exceptions {
			found = found || strings.Contains(x.Text, want)
		}
		if !found {
			t.Errorf("no exception says %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if !r.Coverage.Complete {
		t.Errorf("coverage of every entry: %s", r.Coverage.Note)
	}
	if r.Changes[0].Rollback == nil || !r.Changes[0].Rollback.Manual || r.Changes[0].Outcome != compliance.OutcomeRolledBack {
		t.Errorf("the aborted change = %+v", r.Changes[0])
	}

	// A filtered report cannot prove it omits nothing; a report missing
	// an entry of its period says which.
	in.Filter = compliance.Filter{Apps: []string{"shop"}}
	if r, _ := compliance.Build(in); r.Coverage.Complete || !strings.Contains(r.Coverage.Note, "but not that it omits none of them") {
		t.Errorf("filtered coverage = %+v", r.Coverage)
	}
	in.Filter = compliance.Filter{}
	in.Entries = append(in.Entries[:3:3], in.Entries[4:]...)
	if r, _ := compliance.Build(in); r.Coverage.Complete || !strings.Contains(r.Coverage.Note, "1 of them are not in this report (first: 3)") {
		t.Errorf("coverage with entry 3 left out = %+v", r.Coverage)
	}
}

// TestInterventionsNameWhoActed: the operators' actions on a rollout are
// listed with the credential that asked for each, every one is an
// exception, and a manual abort names who aborted.
func TestInterventionsNameWhoActed(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ev := mustEvent(t)
	meta := shopMeta(t0, "c1")
	api, console := "operator sha256:0123456789ab", "operator sha256:ba9876543210"
	intervention := func(id, action, who, via, before, after, reason string) cloudevents.Event {
		return ev(events.NewInterventionApplied(meta(id), events.Intervention{InterventionID: id, Action: action, App: "shop", Environment: "prod",
			RolloutID: "r1", ArtifactID: purl, Reason: reason, Actor: who, Via: via, PhaseBefore: before, PhaseAfter: after, RequestedAt: t0, AppliedAt: t0}))
	}
	operator := events.Anomaly{Target: events.TargetCanary, App: "shop", Environment: "prod", RolloutID: "r1", Rule: "operator", Origin: "operator",
		Description: "aborted by operator: bad config", DetectedAt: t0}
	all := []any{
		ev(events.NewPromoted(meta("p"), events.Promotion{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: purl, Steps: []int{5, 100}})),
		ev(events.NewCanaryStepped(meta("s"), events.CanaryStep{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: purl, Weight: 5})),
		intervention("i1", "pause", api, "api", "progressing", "paused", "looking"),
		intervention("i2", "resume", api, "api", "paused", "progressing", ""),
		ev(events.NewRollback(meta("rb"), events.Rollback{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: purl, From: purl, TrafficAtAbort: 5, Trigger: operator})),
		intervention("i3", "abort", console, "console", "progressing", "rolledback", "bad config"),
	}
	r, err := compliance.Build(compliance.Input{Period: compliance.Period{From: t0, To: t0.Add(time.Hour)}, Ledger: compliance.Ledger{Size: int64(len(all))},
		Entries: entries(t, t0, nil, all...)})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Changes[0]
	if len(c.Interventions) != 3 || c.Interventions[0].Who != api || c.Interventions[0].Index != 2 || c.Interventions[2].Action != "abort" {
		t.Fatalf("interventions %+v", c.Interventions)
	}
	if c.Rollback == nil || !c.Rollback.Manual || c.Rollback.Who != console {
		t.Fatalf("rollback %+v, want a manual abort by %s", c.Rollback, console)
	}
	var manual []string
	for _, x := range r.Exceptions {
		if x.Kind == compliance.ExceptionManual {
			manual = append(manual, fmt.Sprint(x.Text, " ", x.Indexes))
		}
	}
	want := []string{
		"pause by " + api + " via api (progressing to paused): looking [2]",
		"resume by " + api + " via api (paused to progressing) [3]",
		"aborted by an operator at 5% (aborted by operator: bad config) by " + console + " via console [4 5]",
	}
	if len(manual) != len(want) {
		t.Fatalf("manual exceptions:\n%s", strings.Join(manual, "\n"))
	}
	for i := range want {
		if !strings.HasSuffix(manual[i], want[i]) {
			t.Errorf("manual exception %d = %q, want it to end %q", i, manual[i], want[i])
		}
	}
	var md strings.Builder
	if err := compliance.WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| 2 | 2026-11-30 10:00:00.000Z | pause | `"+api+"` | api | progressing → paused | looking |") ||
		!strings.Contains(md.String(), "Manual action by "+console) {
		t.Errorf("markdown report without the interventions:\n%s", md.String())
	}
}

// TestStageNeverServed: a candidate its stage never served is a change
// stopped there, an exception naming the stage and why, and shown as such.
func TestStageNeverServed(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ev := mustEvent(t)
	meta := shopMeta(t0, "c1")
	all := []any{
		ev(events.NewScanFinished(meta("scan"), events.Scan{Target: purl, TargetKind: "image", Environment: "prod", Outcome: events.OutcomePass, Reason: "no findings"})),
		ev(events.NewStageDeployed(meta("sf"), events.StageDeployment{App: "shop", Stage: "staging", Environment: "staging", ArtifactID: purl,
			URL: "http://staging", VerdictID: "scan", Failed: "Deployment shop/shop-staging: not available within the progress deadline"})),
	}
	r, err := compliance.Build(compliance.Input{Period: compliance.Period{From: t0, To: t0.Add(time.Hour)}, Ledger: compliance.Ledger{Size: int64(len(all))},
		Entries: entries(t, t0, nil, all...)})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Changes[0]
	if c.Outcome != compliance.OutcomeNotServed || c.NotServed == nil || c.NotServed.Index != 1 || c.NotServed.Stage != "staging" {
		t.Fatalf("change %+v (not served %+v)", c, c.NotServed)
	}
	found := false
	for _, x := range r.Exceptions {
		found = found || x.Kind == compliance.ExceptionUnjudged && strings.HasSuffix(x.Text,
			"never served by stage staging (Deployment shop/shop-staging: not available within the progress deadline): not checked there, not promoted")
	}
	if !found {
		t.Errorf("no exception for the stage that never served the candidate: %+v", r.Exceptions)
	}
	var md strings.Builder
	if err := compliance.WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "**Never served by stage staging** at entry 1") {
		t.Errorf("markdown report without the failed stage:\n%s", md.String())
	}
}

// TestBuildRefusesAWrappedIndex: an entry that says index 2^64-1, served as
// index -1, is not the same entry (a conversion to int64 would wrap it to
// -1 and let it through).
func TestBuildRefusesAWrappedIndex(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	e := &entry.Entry{Index: 1<<64 - 1, Kind: entry.KindDeadLetter, RecordedAt: t0, Subject: "rampart.x", StreamSeq: 1,
		Reason: "not a CloudEvent", OriginalSubject: "rampart.x", Data: []byte("junk")}
	b, err := entry.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	in := compliance.Input{Period: compliance.Period{From: t0, To: t0.Add(time.Hour)}, Ledger: compliance.Ledger{Size: 1},
		Entries: []compliance.ProvenEntry{{Index: -1, Entry: string(b)}}}
	if _, err := compliance.Build(in); err == nil || !strings.Contains(err.Error(), "the entry says index 18446744073709551615") {
		t.Errorf("Build = %v, want the index mismatch", err)
	}
}
