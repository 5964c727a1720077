package whatif_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/cmd/rampart/internal/whatif"
	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
)

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

const repo = "127.0.0.1:5000/shop"

// history is the demo's story written as events: v1 released, v2 rolled
// back at 5% on a 10% error ratio, v3 blocked on a Critical. v1 and v2
// carry a Medium busybox finding; v3's verdict predates attestations.
type history struct {
	t    *testing.T
	recs []whatif.Record
	sign *attest.Signer
}

func (h *history) add(ev cloudevents.Event, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
	h.recs = append(h.recs, whatif.Record{Index: int64(len(h.recs)), Event: ev})
}

func meta(id, chain string, at time.Time) events.Meta {
	return events.Meta{ID: id, Source: "/test", ChainID: chain, App: "shop", Time: at}
}

func (h *history) verdict(tag string, n int, outcome string, fs []attest.Finding, attested bool) string {
	h.t.Helper()
	digest := "sha256:" + strings.Repeat(string(rune('a'+n)), 64)
	o, err := events.NewOCI(repo, digest, tag)
	if err != nil {
		h.t.Fatal(err)
	}
	s := events.Scan{Target: o.String(), TargetKind: "image", Environment: "prod", Outcome: outcome, Counts: map[string]int{}}
	for _, f := range fs {
		s.Counts[strings.ToLower(f.Severity)]++
		s.Findings = append(s.Findings, events.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.InstalledVersion, FixedVersion: f.FixedVersion, Severity: f.Severity})
	}
	if outcome == events.OutcomeBlocked {
		s.Reason = fs[0].ID + " (CRITICAL) in libcrypto3"
	}
	if attested {
		raw, err := h.sign.Vuln(context.Background(), attest.Subject{Name: repo, Digest: digest},
			attest.Vuln{Scanner: attest.Scanner{Result: attest.Result{Counts: s.Counts, Findings: fs}}})
		if err != nil {
			h.t.Fatal(err)
		}
		s.Attestations = []json.RawMessage{raw}
	}
	h.add(events.NewScanFinished(meta("verdict-"+tag, "chain-"+tag, t0.Add(time.Duration(n)*time.Hour)), s))
	return o.String()
}

var (
	medium   = attest.Finding{ID: "CVE-2025-46394", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: "MEDIUM"}
	critical = attest.Finding{ID: "CVE-2025-9230", Package: "libcrypto3", InstalledVersion: "3.5.1-r0", FixedVersion: "3.5.4-r0", Severity: "CRITICAL"}
)

func demoHistory(t *testing.T) []whatif.Record {
	_, key, _ := ed25519.GenerateKey(nil)
	s, err := attest.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	h := &history{t: t, sign: s}
	at := t0
	v1 := h.verdict("v1", 1, events.OutcomePass, []attest.Finding{medium}, true)
	h.add(events.NewPromoted(meta("p1", "chain-v1", at), events.Promotion{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: v1, Steps: []int{5, 100}}))
	for step, observed := range []float64{0.004, 0.002} {
		h.add(events.NewCanaryAnalyzed(meta(fmt.Sprintf("a1-%d", step), "chain-v1", at), events.Analysis{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: v1,
			Step: step, Weight: []int{5, 100}[step], Provider: "scrape", Readings: 9, Metrics: []events.Metric{
				{Rule: "http-5xx-ratio", Observed: observed, Threshold: 0.01, Result: "pass", Readings: 9},
				{Rule: "memory-ratio", Threshold: 1.9, Result: "nodata"}}}))
	}
	h.add(events.NewReleaseCompleted(meta("rel1", "chain-v1", at), events.Release{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: v1}))
	v2 := h.verdict("v2", 2, events.OutcomePass, []attest.Finding{medium}, true)
	h.add(events.NewPromoted(meta("p2", "chain-v2", at), events.Promotion{RolloutID: "r2", App: "shop", Environment: "prod", ArtifactID: v2, Steps: []int{5, 100}}))
	observed, threshold := 0.1, 0.05
	h.add(events.NewRollback(meta("rb2", "chain-v2", at), events.Rollback{RolloutID: "r2", App: "shop", Environment: "prod", ArtifactID: v1, From: v2,
		Trigger: events.Anomaly{Rule: "http-5xx-ratio", Origin: "scrape", Description: "canary 5xx ratio 10.00% is above the maximum 5.00%", Observed: &observed, Threshold: &threshold}}))
	h.verdict("v3", 3, events.OutcomeBlocked, []attest.Finding{critical, medium}, false)
	return h.recs
}

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func byVersion(r whatif.Report) map[string]whatif.Release {
	m := map[string]whatif.Release{}
	for _, rel := range r.Releases {
		m[rel.Version] = rel
	}
	return m
}

func TestBlockMedium(t *testing.T) {
	var c whatif.Candidate
	if err := c.Load(write(t, "strict.yaml", "block_on: [CRITICAL, HIGH, MEDIUM]\n")); err != nil {
		t.Fatal(err)
	}
	rep := whatif.Judge(demoHistory(t), c)
	rels := byVersion(rep)
	for _, tc := range []struct {
		version          string
		happened, whatIf whatif.Outcome
		changed          bool
		why              string
	}{
		{"v1", whatif.Released, whatif.Blocked, true, "CVE-2025-46394 (MEDIUM) in busybox 1.37.0-r18, fixed in 1.37.0-r19"},
		{"v2", whatif.RolledBack, whatif.Blocked, true, "CVE-2025-46394 (MEDIUM) in busybox"},
		{"v3", whatif.Blocked, whatif.Blocked, false, "CVE-2025-9230 (CRITICAL)"},
	} {
		rel := rels[tc.version]
		if rel.Happened != tc.happened || rel.WhatIf != tc.whatIf || rel.Changed != tc.changed || !strings.Contains(strings.Join(rel.Why, "\n"), tc.why) {
			t.Errorf("%s: %+v, want %s → %s (changed %v) because %q", tc.version, rel, tc.happened, tc.whatIf, tc.changed, tc.why)
		}
	}
	if rep.Changed != 2 || rep.Unattested != 1 {
		t.Errorf("changed %d unattested %d, want 2 and 1", rep.Changed, rep.Unattested)
	}
	if n := rels["v3"].Notes; len(n) == 0 || !strings.Contains(n[0], "no vulnerability attestation") {
		t.Errorf("v3 notes %q", n)
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"*  v1", "released", "blocked", "2 of 3 releases would have ended differently", "why: CVE-2025-46394 (MEDIUM) in busybox"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func appsWithErrorRate(max string) string {
	return `version: 1
apps:
  - name: shop
    image: ` + repo + `
    environment: prod
    router: {type: local, local: {listen: "127.0.0.1:8081", stable: "http://127.0.0.1:9001", canary: "http://127.0.0.1:9002"}}
    canary: {steps: [5, 100], pause: 10s}
    analysis: {provider: scrape, interval: 1s, errorRate: {max: ` + max + `, minRequests: 10}, memory: {maxRatio: 2}}
`
}

func TestLooserErrorRate(t *testing.T) {
	var c whatif.Candidate
	if err := c.Load(write(t, "rampart.yaml", appsWithErrorRate("0.2"))); err != nil {
		t.Fatal(err)
	}
	if c.Gate != nil || c.Apps == nil {
		t.Fatalf("candidate %+v: want rampart.yaml only", c)
	}
	rels := byVersion(whatif.Judge(demoHistory(t), c))
	v2 := rels["v2"]
	if v2.WhatIf != whatif.Passed || !v2.Changed || !strings.Contains(strings.Join(v2.Why, "\n"), "5xx ratio 10.00% is within the candidate maximum 20.00%") {
		t.Errorf("v2 = %+v", v2)
	}
	if rels["v1"].Changed || rels["v3"].Changed {
		t.Errorf("v1 %+v v3 %+v changed under a looser error rate", rels["v1"], rels["v3"])
	}
}

func TestLoadRefusesBadPolicy(t *testing.T) {
	var c whatif.Candidate
	err := c.Load(write(t, "bad.yaml", "block_on: [SEVERE]\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown severity "SEVERE"`) {
		t.Errorf("err = %v", err)
	}
	if err := c.Load(write(t, "a.yaml", "block_on: [LOW]\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Load(write(t, "b.yaml", "block_on: [LOW]\n")); err == nil || !strings.Contains(err.Error(), "a second gate policy") {
		t.Errorf("second gate policy: err = %v", err)
	}
}

// A stricter error rate fails v1's first step on the worst reading the
// watcher recorded for it.
func TestStricterErrorRate(t *testing.T) {
	var c whatif.Candidate
	if err := c.Load(write(t, "rampart.yaml", appsWithErrorRate("0.003"))); err != nil {
		t.Fatal(err)
	}
	rels := byVersion(whatif.Judge(demoHistory(t), c))
	v1 := rels["v1"]
	if v1.WhatIf != whatif.RolledBack || !v1.Changed || !strings.Contains(strings.Join(v1.Why, "\n"), "step 1 at 5%: 5xx ratio 0.40% is above the candidate maximum 0.30%") {
		t.Errorf("v1 = %+v", v1)
	}
	if len(v1.Evidence) != 3 {
		t.Errorf("v1 evidence %v, want the verdict and both analyses", v1.Evidence)
	}
	var loose whatif.Candidate
	if err := loose.Load(write(t, "rampart.yaml", appsWithErrorRate("0.01"))); err != nil {
		t.Fatal(err)
	}
	if v1 := byVersion(whatif.Judge(demoHistory(t), loose))["v1"]; v1.Changed || !strings.Contains(strings.Join(v1.Why, "\n"), "every analysed step (2) within the candidate thresholds") {
		t.Errorf("v1 under the thresholds in force = %+v", v1)
	}
}
