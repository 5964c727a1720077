package compliance_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	ledgerapp "github.com/rampartci/rampart/services/ledger/app"
)

// ledgerFixture is a real ledger service on a real JetStream server that
// has recorded the scenario.
type ledgerFixture struct {
	url      string
	verifier *checkpoint.Verifier
	client   *client.Client
	from, to time.Time
}

// startLedger runs the real ledger service against a JetStream server of
// its own, publishes evs and waits until a checkpoint covers them all.
func startLedger(t testing.TB, evs []cloudevents.Event) *ledgerFixture {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	opts := ledgerapp.DefaultOptions(t.TempDir())
	opts.CheckpointInterval = 10 * time.Millisecond
	led, err := ledgerapp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sopts := service.DefaultOptions("ledger-test")
	sopts.NATSURL = ns.ClientURL()
	sopts.NATS = natstest.Identity(t, ns, "ledger")
	sopts.HTTPAddr = "127.0.0.1:0"
	h, err := service.Start(t.Context(), sopts, slog.New(slog.DiscardHandler), led)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("stopping the ledger: %v", err)
		}
	})
	f := &ledgerFixture{url: "http://" + h.HTTPAddr(), from: time.Now().Add(-time.Second)}
	for _, ev := range evs {
		if _, err := b.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := os.ReadFile(opts.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if f.verifier, err = checkpoint.NewVerifier(strings.TrimSpace(string(pub))); err != nil {
		t.Fatal(err)
	}
	if f.client, err = client.New(f.url, nil); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		note, err := f.client.LatestCheckpoint(t.Context())
		if err != nil || note == nil {
			return errors.New("no checkpoint yet")
		}
		cp, err := f.verifier.Open(note)
		if err != nil {
			return err
		}
		if cp.Size < int64(len(evs)) {
			return errors.New("the checkpoint does not cover every event yet")
		}
		return nil
	})
	f.to = time.Now().Add(time.Second)
	return f
}

// scenario is the demo's story: a commit with a cloud key blocked at the
// source scan, v1 released, v2 rolled back on its 5xx ratio with on-call
// paged, v3 blocked on a CVE.
func scenario(t *testing.T) []cloudevents.Event {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Minute)
	var evs []cloudevents.Event
	add := func(ev cloudevents.Event, err error) cloudevents.Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		return ev
	}
	meta := func(id, chain string, d time.Duration) events.Meta {
		return events.Meta{ID: id, Source: "/test", Time: t0.Add(d), ChainID: chain, App: "shop"}
	}
	const policy, db = "sha256:5e1f0c", "2:2026-11-30T06:00:00Z"
	sha := "9fceb02d0ae598e95dc970b74767f19372d61af8"
	add(events.NewCommit(meta("commit", "c-commit", 0), events.Commit{Repository: "git.example/shop-config", SHA: sha, Author: "dev@example.com", Message: "add prod env"}))
	add(events.SignScan(meta("commit-scan", "c-commit", time.Second), events.Scan{Target: sha, TargetKind: "source", Environment: "prod",
		Outcome: events.OutcomeBlocked, Reason: "secret aws-access-key-id in deploy/prod.env:2", Counts: map[string]int{"CRITICAL": 1},
		Findings: []events.Finding{{ID: "aws-access-key-id", Severity: "CRITICAL", Title: "AWS Access Key ID"}}, PolicyVersion: policy}, key))

	image := func(v string, d time.Duration, digest byte) (string, string) {
		chain := "c-" + v
		dg := "sha256:" + strings.Repeat(string(digest), 64)
		purl := "pkg:oci/shop@" + url.QueryEscape(dg) + "?repository_url=127.0.0.1%3A5000/shop&tag=" + v
		add(events.NewArtifactPushed(meta(v+"-push", chain, d), events.Artifact{Purl: purl, Registry: "127.0.0.1:5000", Repository: "shop", Digest: dg, Tag: v, User: "ci-bot"}))
		return chain, purl
	}
	pass := func(v, chain, purl string, d time.Duration, waivers ...events.Waiver) {
		reason := "no findings at CRITICAL, HIGH"
		if len(waivers) > 0 {
			reason = "no blocking findings (1 waived, 0 unfixed ignored)"
		}
		add(events.SignScan(meta(v+"-scan", chain, d), events.Scan{Target: purl, TargetKind: "image", Environment: "prod", Outcome: events.OutcomePass,
			Reason: reason, Counts: map[string]int{"MEDIUM": 1}, DBVersion: db, PolicyVersion: policy, Waivers: waivers}, key))
	}
	c1, p1 := image("v1", 2*time.Second, 'a')
	pass("v1", c1, p1, 3*time.Second, events.Waiver{ID: "CVE-2025-46394", Package: "busybox", Owner: "alice@example.com",
		Expires: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), Reason: "no shell in the image's entrypoint"})
	add(events.NewPromoted(meta("v1-promote", c1, 4*time.Second), events.Promotion{RolloutID: "shop-v1", App: "shop", Environment: "prod", ArtifactID: p1, Steps: []int{5, 50, 100}}))
	for i, w := range []int{5, 50, 100} {
		add(events.NewCanaryStepped(meta("v1-step-"+string(rune('0'+i)), c1, time.Duration(5+3*i)*time.Second), events.CanaryStep{RolloutID: "shop-v1", App: "shop", Environment: "prod", ArtifactID: p1, Step: i, Weight: w}))
	}
	add(events.NewReleaseCompleted(meta("v1-release", c1, 15*time.Second), events.Release{RolloutID: "shop-v1", App: "shop", Environment: "prod", ArtifactID: p1}))

	c2, p2 := image("v2", 20*time.Second, 'b')
	pass("v2", c2, p2, 21*time.Second)
	add(events.NewPromoted(meta("v2-promote", c2, 22*time.Second), events.Promotion{RolloutID: "shop-v2", App: "shop", Environment: "prod", ArtifactID: p2, Previous: p1, Steps: []int{5, 50, 100}}))
	add(events.NewCanaryStepped(meta("v2-step-0", c2, 23*time.Second), events.CanaryStep{RolloutID: "shop-v2", App: "shop", Environment: "prod", ArtifactID: p2, Stable: p1, Weight: 5}))
	observed, threshold := 0.1, 0.02
	anomaly := events.Anomaly{Target: events.TargetCanary, App: "shop", Environment: "prod", ArtifactID: p2, RolloutID: "shop-v2", Rule: "http-5xx-ratio",
		Origin: "scrape", Description: "5xx ratio of the canary", Observed: &observed, Threshold: &threshold, DetectedAt: t0.Add(25 * time.Second)}
	add(events.NewAnomaly(meta("v2-anomaly", c2, 25*time.Second), anomaly))
	add(events.NewRollback(meta("v2-rollback", c2, 25*time.Second+10*time.Millisecond), events.Rollback{RolloutID: "shop-v2", App: "shop", Environment: "prod",
		ArtifactID: p1, From: p2, TrafficAtAbort: 5, Trigger: anomaly, AnomalyID: "v2-anomaly"}))
	add(events.NewPage(meta("v2-page", c2, 26*time.Second), events.Page{App: "shop", Environment: "prod", TicketURI: "https://pagerduty.example/incidents/PDV2",
		DedupKey: "shop-v2", Description: "rollback of shop in prod: http-5xx-ratio", RolloutID: "shop-v2", ArtifactID: p2, Channels: []string{"pagerduty"}}))

	c3, p3 := image("v3", 30*time.Second, 'c')
	add(events.SignScan(meta("v3-scan", c3, 31*time.Second), events.Scan{Target: p3, TargetKind: "image", Environment: "prod", Outcome: events.OutcomeBlocked,
		Reason: "CVE-2024-9143 in libcrypto3 3.3.1-r0 (HIGH, fixed in 3.3.2-r1)", Counts: map[string]int{"HIGH": 1, "MEDIUM": 1},
		Findings:  []events.Finding{{ID: "CVE-2024-9143", Package: "libcrypto3", InstalledVersion: "3.3.1-r0", FixedVersion: "3.3.2-r1", Severity: "HIGH", Title: "openssl: out-of-bounds memory access"}},
		DBVersion: db, PolicyVersion: policy}, key))
	return evs
}

// build collects a report of the whole scenario.
func build(t *testing.T, f *ledgerFixture, c *client.Client) (*compliance.Report, []byte) {
	t.Helper()
	var done, total int64
	r, err := compliance.Collect(t.Context(), c, f.verifier, compliance.Options{From: f.from, To: f.to,
		Progress: func(d, n int64) { done, total = d, n }})
	if err != nil {
		t.Fatal(err)
	}
	if done != r.Ledger.Size || total != r.Ledger.Size {
		t.Errorf("progress ended at %d of %d, want %d of %d", done, total, r.Ledger.Size, r.Ledger.Size)
	}
	data, err := compliance.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return r, data
}

func changeOf(t *testing.T, r *compliance.Report, chain string) compliance.Change {
	t.Helper()
	for _, c := range r.Changes {
		if c.Chain == chain {
			return c
		}
	}
	t.Fatalf("no change of chain %s in %+v", chain, r.Changes)
	return compliance.Change{}
}

// TestReportFromRealLedger builds the report from the real ledger service
// and checks what it states about each change, the controls and the
// exceptions, and that it verifies.
func TestReportFromRealLedger(t *testing.T) {
	evs := scenario(t)
	f := startLedger(t, evs)
	r, data := build(t, f, f.client)

	if got := len(r.Changes); got != 4 {
		t.Fatalf("%d changes, want 4: %+v", got, r.Changes)
	}
	commit := changeOf(t, r, "c-commit")
	if commit.Outcome != compliance.OutcomeBlockedAtSource || commit.Trigger.Who != "dev@example.com" || commit.Gates[0].Findings[0].ID != "aws-access-key-id" {
		t.Errorf("commit change = %+v", commit)
	}
	v1 := changeOf(t, r, "c-v1")
	if v1.Outcome != compliance.OutcomeReleased || v1.Rollout == nil || len(v1.Rollout.CanarySteps) != 3 || !v1.Rollout.CanarySteps[0].Passed ||
		v1.Rollout.ScanIndex != v1.Gates[0].Index || v1.Gates[0].DBVersion == "" {
		t.Errorf("v1 = %+v", v1)
	}
	v2 := changeOf(t, r, "c-v2")
	if v2.Outcome != compliance.OutcomeRolledBack || v2.Rollback == nil || v2.Page == nil {
		t.Fatalf("v2 = %+v", v2)
	}
	if !strings.HasPrefix(v2.Rollback.Trigger, "http-5xx-ratio observed 0.1 > threshold 0.02") || v2.Rollback.TrafficAtAbort != 5 || v2.Rollback.AnomalyIndex < 0 ||
		v2.Page.Ticket != "https://pagerduty.example/incidents/PDV2" || v2.Rollout.CanarySteps[0].Passed {
		t.Errorf("v2 rollback = %+v, page = %+v, steps = %+v", v2.Rollback, v2.Page, v2.Rollout.CanarySteps)
	}
	v3 := changeOf(t, r, "c-v3")
	if v3.Outcome != compliance.OutcomeBlockedAtImage || v3.Rollout != nil || v3.Gates[0].Findings[0].ID != "CVE-2024-9143" {
		t.Errorf("v3 = %+v", v3)
	}
	if !r.Coverage.Complete || r.Coverage.First != 0 || r.Coverage.Last != int64(len(evs)-1) || len(r.Entries) != len(evs) {
		t.Errorf("coverage = %+v with %d entries", r.Coverage, len(r.Entries))
	}
	status := map[string]string{}
	for _, c := range r.Controls {
		status[c.ID] = c.Status
	}
	// v1's waiver is an exception of the change and vulnerability
	// controls, v2's rollback of the anomaly control.
	want := map[string]string{"CC8.1": compliance.StatusWithExceptions, "CC7.1": compliance.StatusWithExceptions, "CC7.2": compliance.StatusWithExceptions,
		"A.8.32": compliance.StatusWithExceptions, "A.8.8": compliance.StatusWithExceptions, "A.8.25 / A.8.29": compliance.StatusWithExceptions, "A.8.9": compliance.StatusEvidenced}
	for id, s := range want {
		if status[id] != s {
			t.Errorf("control %s: %q, want %q", id, status[id], s)
		}
	}
	if len(r.Exceptions) != 2 || r.Exceptions[0].Kind != compliance.ExceptionWaiver || r.Exceptions[1].Kind != compliance.ExceptionFailed ||
		!strings.Contains(r.Exceptions[0].Text, "CVE-2025-46394 in busybox accepted at the image scan by a waiver owned by alice@example.com, expiring 2026-12-31T00:00:00Z") {
		t.Errorf("exceptions = %+v, want v1's waiver and v2's failed canary step", r.Exceptions)
	}
	if c := r.Controls[0]; !strings.HasPrefix(c.Statement, "4 change(s): 2 promoted, 2 of them on a signed passing image scan verdict in their chain; 1 released after every canary step passed, 1 rolled back, 0 in progress; 2 stopped at a scan gate") {
		t.Errorf("CC8.1 statement: %s", c.Statement)
	}

	res, err := compliance.Verify(data, f.verifier)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Entries != len(evs) {
		t.Errorf("verified %d entries, want %d", res.Entries, len(evs))
	}

	var md, html, csvOut bytes.Buffer
	if err := compliance.WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := compliance.WriteHTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if err := compliance.WriteCSV(&csvOut, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"blocked at source scan", "CVE-2024-9143", "http-5xx-ratio observed 0.1 > threshold 0.02", "PDV2", "SOC 2 CC8.1", "A.8.32"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("Markdown lacks %q", s)
		}
	}
	for _, s := range []string{"<script", "src=", "<link", "url("} {
		if strings.Contains(html.String(), s) {
			t.Errorf("the HTML report has %q: it must load nothing", s)
		}
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 5 || rows[0][0] != "chain" {
		t.Fatalf("CSV: %v, %d rows", err, len(rows))
	}
	if rows[2][6] != compliance.OutcomeReleased || rows[3][6] != compliance.OutcomeRolledBack || rows[3][16] == "" || rows[3][17] == "" {
		t.Errorf("CSV row of v2 = %q", rows[3])
	}
}

// TestVerifyNamesWhatWasChanged changes one thing at a time in a verified
// report and checks that verify fails naming it.
func TestVerifyNamesWhatWasChanged(t *testing.T) {
	f := startLedger(t, scenario(t))
	r, data := build(t, f, f.client)
	v2 := changeOf(t, r, "c-v2")

	otherKey := func() *checkpoint.Verifier {
		s, _, err := checkpoint.GenerateSigner("rampart.ledger")
		if err != nil {
			t.Fatal(err)
		}
		return s.Verifier()
	}()
	entryJSON := r.Entries[3].Entry
	cases := []struct {
		name     string
		edit     func([]byte) []byte
		verifier *checkpoint.Verifier
		is       error
		says     string
	}{
		{"a statement", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"trafficAtAbort": 5`), []byte(`"trafficAtAbort": 7`), 1)
		}, nil, compliance.ErrStatement, "changes[2].rollback.trafficAtAbort: the report says 7; its ledger entries give 5"},
		{"an outcome", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"outcome": "rolled back"`), []byte(`"outcome": "released"`), 1)
		}, nil, compliance.ErrStatement, `changes[2].outcome: the report says "released"; its ledger entries give "rolled back"`},
		{"one byte of a ledger entry", func(b []byte) []byte {
			quoted, _ := json.Marshal(entryJSON)
			changed := bytes.Replace(quoted, []byte(`"index\":3`), []byte(`"index\":4`), 1)
			return bytes.Replace(b, quoted, changed, 1)
		}, nil, compliance.ErrEntry, "entries[3] (ledger entry 3): the entry says index 4"},
		{"a proof hash", func(b []byte) []byte {
			h := r.Entries[0].Proof[0].String()
			return bytes.Replace(b, []byte(h), []byte(r.Entries[0].LeafHash.String()), 1)
		}, nil, compliance.ErrEntry, "entries[0] (ledger entry 0): the inclusion proof does not lead to the checkpoint's root"},
		{"the checkpoint", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`rampart.ledger\n`+itoa(r.Ledger.Size)), []byte(`rampart.ledger\n`+itoa(r.Ledger.Size+1)), 1)
		}, nil, compliance.ErrCheckpoint, "checkpoint signature"},
		{"whitespace", func(b []byte) []byte { return bytes.Replace(b, []byte(`"format": `), []byte(`"format":  `), 1) },
			nil, compliance.ErrStatement, "byte "},
		{"the key", func(b []byte) []byte { return b }, otherKey, compliance.ErrKey, "the trusted key is"},
		{"a dropped change", func(b []byte) []byte {
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			doc["changes"] = doc["changes"].([]any)[:3]
			out, _ := json.MarshalIndent(doc, "", "  ")
			return append(out, '\n')
		}, nil, compliance.ErrStatement, "changes: the report says 3 items; its ledger entries give 4 items"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			changed := tc.edit(bytes.Clone(data))
			if tc.verifier == nil && bytes.Equal(changed, data) {
				t.Fatal("the edit changed nothing")
			}
			v := f.verifier
			if tc.verifier != nil {
				v = tc.verifier
			}
			_, err := compliance.Verify(changed, v)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("verify: %v\nwant %v saying %q", err, tc.is, tc.says)
			}
		})
	}
	if v2.Rollback == nil {
		t.Fatal("v2 has no rollback")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestCollectRefusesATamperedLedger serves the real ledger through a proxy
// that changes one byte of one entry: the report is not built, and the
// error names the entry.
func TestCollectRefusesATamperedLedger(t *testing.T) {
	f := startLedger(t, scenario(t))
	target, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/ledger/entries" {
			return nil
		}
		var page client.Entries
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return err
		}
		resp.Body.Close()
		for i, e := range page.Entries {
			if e.Index == 5 {
				page.Entries[i].Entry = bytes.Replace(e.Entry, []byte(`"weight":5`), []byte(`"weight":6`), 1)
			}
		}
		b, err := json.Marshal(page)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = compliance.Collect(t.Context(), c, f.verifier, compliance.Options{From: f.from, To: f.to})
	// The ledger writes entries in bundles with their leaf hashes: the
	// changed entry no longer matches its own.
	if err == nil || !strings.Contains(err.Error(), "ledger entry 5") || !strings.Contains(err.Error(), "leaf hash") {
		t.Fatalf("Collect from a tampered ledger: %v, want an error naming entry 5's leaf hash", err)
	}
}
