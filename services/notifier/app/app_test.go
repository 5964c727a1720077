package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/notifier/internal/chaintest"
	"github.com/rampartci/rampart/services/notifier/internal/dispatch"
	"github.com/rampartci/rampart/services/notifier/internal/incident"
	"github.com/rampartci/rampart/services/notifier/internal/notify/pagerduty/pdtest"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack/slacktest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// now is the notifier's clock in these tests.
func now() time.Time { return chaintest.T0.Add(45 * time.Second) }

// env is one notifier against a real JetStream, a fake PagerDuty and a fake
// Slack webhook.
type env struct {
	t         *testing.T
	ns        *server.Server
	bus       *bus.Bus
	js        jetstream.JetStream
	pd        *pdtest.Server
	slack     *slacktest.Server
	policy    *policy.Store
	reportDir string
	ledger    *chaintest.Ledger
	recorded  uint64 // entries appended to the ledger
	regs      []*prometheus.Registry
	app       *App // the last notifier started
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	e := &env{t: t, ns: ns, bus: b, js: b.JetStream(), pd: pdtest.NewServer(t), slack: slacktest.NewServer(t), reportDir: t.TempDir(), ledger: chaintest.NewLedger(t)}

	// Secrets by reference, as in rampart.yaml: the routing key from the
	// environment, the webhook from a file.
	t.Setenv("RAMPART_TEST_PD_KEY", "R0UT1NGKEY0000000000000000000000")
	hook := filepath.Join(t.TempDir(), "slack-webhook")
	if err := os.WriteFile(hook, []byte(e.slack.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.policy = policy.StoreOf(&policy.Policy{Version: 1, Apps: []policy.App{{
		Name: "shop", Environment: "prod", Image: chaintest.Repository,
		Notify: policy.Notify{
			PagerDuty:   &policy.PagerDuty{RoutingKey: policy.Secret{Env: "RAMPART_TEST_PD_KEY"}, Severity: "critical", URL: e.pd.URL},
			Slack:       &policy.Slack{Webhook: policy.Secret{File: hook}},
			ScanBlocked: []string{policy.ChannelSlack},
			Released:    []string{policy.ChannelSlack},
		},
	}}})
	return e
}

// options are the options of a notifier instance; adjust changes them.
func (e *env) options(adjust func(*Options)) Options {
	opts := Options{
		Policy:       e.policy,
		ReportDir:    e.reportDir,
		LedgerURL:    e.ledger.URL,
		LedgerWait:   2 * time.Second,
		RetryInitial: time.Millisecond,
		Now:          now,
		Consumer:     &bus.ConsumerOptions{MaxDeliver: 5, AckWait: 10 * time.Second, Backoff: []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, time.Second}},
	}
	if adjust != nil {
		adjust(&opts)
	}
	return opts
}

// start starts one notifier instance; opts adjusts its options.
func (e *env) start(adjust func(*Options)) *App {
	e.t.Helper()
	a, err := New(e.options(adjust))
	if err != nil {
		e.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e.regs = append(e.regs, reg)
	logger := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := a.Start(e.t.Context(), service.Deps{Bus: e.bus, Registerer: reg, Logger: logger}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			e.t.Errorf("stop: %v", err)
		}
	})
	if err := a.Ready(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	e.app = a
	return a
}

// report asks the last notifier started for a rollout's report over its
// HTTP route, as the CLI does; a missing report is an error.
func (e *env) report(rolloutID, format string) ([]byte, error) {
	mux := http.NewServeMux()
	e.app.Routes(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", ReportPath+url.PathEscape(rolloutID)+"?format="+format, nil))
	if w.Code != http.StatusOK {
		return nil, fmt.Errorf("GET report %s: %d %s", rolloutID, w.Code, w.Body)
	}
	return w.Body.Bytes(), nil
}

// testWriter sends logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) publish(evs ...cloudevents.Event) {
	e.t.Helper()
	for _, ev := range evs {
		if _, err := e.bus.Publish(e.t.Context(), ev); err != nil {
			e.t.Fatal(err)
		}
	}
}

// record has the ledger record evs.
func (e *env) record(evs ...cloudevents.Event) {
	e.t.Helper()
	e.ledger.Append(e.t, chaintest.Entries(e.t, e.recorded, evs...)...)
	e.recorded += uint64(len(evs))
}

// counter sums a counter over every instance's registry.
func (e *env) counter(name string, labels map[string]string) float64 {
	e.t.Helper()
	var sum float64
	for _, reg := range e.regs {
		mfs, err := reg.Gather()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
						continue metrics
					}
				}
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func (e *env) waitFor(what string, f func() error) {
	e.t.Helper()
	natstest.CheckFor(e.t, 15*time.Second, 20*time.Millisecond, func() error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// incident reads the rollout's incident record.
func (e *env) incident(rolloutID string) *incident.Incident {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.t.Context(), incident.Bucket)
	if err != nil {
		e.t.Fatal(err)
	}
	inc, err := incident.NewStore(kv, time.Minute, nil).Get(e.t.Context(), rolloutID)
	if err != nil {
		e.t.Fatal(err)
	}
	return inc
}

func (e *env) completed(rolloutID string) error {
	inc := e.incident(rolloutID)
	if inc == nil || inc.CompletedAt.IsZero() {
		return fmt.Errorf("incident %s not complete: %+v", rolloutID, inc)
	}
	return nil
}

// pageEvent returns the page event published for rolloutID.
func (e *env) pageEvent(rolloutID string) (cloudevents.Event, error) {
	s, err := e.js.Stream(e.t.Context(), bus.StreamName)
	if err != nil {
		return cloudevents.Event{}, err
	}
	m, err := s.GetLastMsgForSubject(e.t.Context(), "rampart.page.shop")
	if err != nil {
		return cloudevents.Event{}, err
	}
	return events.FromMsg(m.Header, m.Data)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestRollback is the whole path: the release's events are published, the
// ledger records them after the rollback is consumed; the notifier pages
// at once, publishes the page event, waits for the ledger, stores the
// report, adds it to the same PagerDuty incident and posts it once.
func TestRollback(t *testing.T) {
	e := newEnv(t)
	e.start(nil)
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	e.publish(rel.Events...)
	// The ledger records the release, then, later, the rollback: the
	// report must wait for it rather than be built without it.
	e.record(rel.Events[:len(rel.Events)-1]...)
	e.record(rel.Rollback)

	e.waitFor("rollback notified", func() error { return e.completed("r-42") })

	evs := e.pd.Events()
	if len(evs) != 2 || e.pd.Requests() != 2 {
		t.Fatalf("PagerDuty got %d requests, %d events; want the page and its report", e.pd.Requests(), len(evs))
	}
	for _, ev := range evs {
		if ev.Action != "trigger" || ev.DedupKey != "r-42" || ev.Payload.Severity != "critical" || ev.Payload.Source != "shop (prod)" ||
			!strings.Contains(ev.Payload.Summary, "http-5xx-ratio observed 0.0342 > threshold 0.01") {
			t.Errorf("page = %+v", ev)
		}
	}
	// The page carries the rollback itself; the report follows on the
	// same incident.
	if !strings.Contains(string(evs[0].Payload.CustomDetails), `"rolloutId":"r-42"`) || strings.Contains(string(evs[0].Payload.CustomDetails), "timeline") {
		t.Errorf("the page's custom_details are not the rollback: %s", evs[0].Payload.CustomDetails)
	}
	ev := evs[1]
	stored, err := e.report("r-42", FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var details, report map[string]any
	if err := json.Unmarshal(ev.Payload.CustomDetails, &details); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stored, &report); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(details) != fmt.Sprint(report) {
		t.Errorf("custom_details is not the stored report:\n%s\n%s", ev.Payload.CustomDetails, stored)
	}
	if led := report["ledger"].(map[string]any); led["complete"] != true || led["rollbackIndex"] != float64(7) {
		t.Errorf("report ledger = %v, want complete with the rollback at entry 7", led)
	}
	md, err := e.report("r-42", FormatMarkdown)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "rollback.md", md)
	golden(t, "rollback.json", stored)
	for ext, want := range map[string][]byte{".md": md, ".json": stored} {
		got, err := os.ReadFile(filepath.Join(e.reportDir, "r-42"+ext))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("report file %s differs from the stored report (%v)", ext, err)
		}
	}

	// Slack: the anomaly heads-up and the rollback report.
	var headers []string
	for _, m := range e.slack.Messages() {
		headers = append(headers, m.Blocks[0].Text.Text)
	}
	if strings.Join(headers, "; ") != "Anomaly: shop in prod; Rollback: shop in prod" {
		t.Errorf("Slack messages: %q", headers)
	}

	page, err := e.pageEvent("r-42")
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.PageOf(page)
	if err != nil {
		t.Fatal(err)
	}
	cd, _ := events.Parse(page)
	if p.DedupKey != "r-42" || p.TicketURI != e.pd.URL+"/v2/enqueue?dedup_key=r-42" || events.ChainID(page) != "chain-7" ||
		cd.CausedBy() != rel.Rollback.ID() || page.ID() != dispatch.PageEventID("r-42") || p.ArtifactID != chaintest.Purl(chaintest.CanaryDigest, "v2") {
		t.Errorf("page event %s = %+v (chain %q, caused by %q)", page.ID(), p, events.ChainID(page), cd.CausedBy())
	}

	if got := e.counter("rampart_notifier_notifications_total", map[string]string{"channel": "pagerduty", "about": "rollback", "result": "sent"}); got != 2 {
		t.Errorf("pagerduty rollback notifications = %v, want 2 (the page, then its report)", got)
	}
	if got := testutil.CollectAndCount(e.regs[0], "rampart_notifier_report_build_seconds"); got != 1 {
		t.Errorf("report build latency series = %d", got)
	}
}

// TestDuplicateRollback: the same rollback published again, and another
// rollback event for the same rollout, on two notifier replicas sharing
// the durable consumer: one page.
func TestDuplicateRollback(t *testing.T) {
	e := newEnv(t)
	e.start(nil)
	e.start(nil)
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	rb, _ := events.RollbackOf(rel.Rollback)
	again, err := events.NewRollback(events.Meta{ID: "r-42-rollback-again", Source: "/rampart/deployer-2", Time: rel.Rollback.Time(), ChainID: "chain-7", App: "shop"}, rb)
	if err != nil {
		t.Fatal(err)
	}
	e.publish(rel.Events...)
	e.publish(rel.Rollback, again) // the first is a duplicate id: JetStream drops it
	e.record(rel.Events...)
	e.record(again)

	e.waitFor("rollback notified and the duplicate acknowledged", func() error {
		if err := e.completed("r-42"); err != nil {
			return err
		}
		if d := e.counter("rampart_notifier_duplicate_rollbacks_total", nil); d != 1 {
			return fmt.Errorf("%v duplicates acknowledged, want 1", d)
		}
		return nil
	})
	if evs := e.pd.Events(); e.pd.Requests() != 2 || len(evs) != 2 || evs[0].DedupKey != "r-42" || evs[1].DedupKey != "r-42" {
		t.Errorf("PagerDuty got %d requests, want 2 on incident r-42 (the page and its report): %+v", e.pd.Requests(), evs)
	}
	rollbacks := 0
	for _, m := range e.slack.Messages() {
		if strings.HasPrefix(m.Text, "Rollback") {
			rollbacks++
		}
	}
	if rollbacks != 1 {
		t.Errorf("%d rollback posts to Slack, want 1", rollbacks)
	}
}

// TestPagerDutyRetry: 429 then 500 then 202 is one page after three
// attempts, within one delivery.
func TestPagerDutyRetry(t *testing.T) {
	e := newEnv(t)
	e.pd.Respond(http.StatusTooManyRequests, http.StatusInternalServerError)
	e.start(nil)
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	e.publish(rel.Rollback)
	e.record(rel.Rollback)
	e.waitFor("rollback notified", func() error { return e.completed("r-42") })
	if len(e.pd.Events()) != 2 || e.pd.Requests() != 4 {
		t.Errorf("PagerDuty: %d requests, %d accepted; want 4 (the page on the third) and 2", e.pd.Requests(), len(e.pd.Events()))
	}
	if got := e.counter("rampart_notifier_delivery_retries_total", map[string]string{"channel": "pagerduty"}); got != 2 {
		t.Errorf("retries = %v, want 2", got)
	}
}

// TestPagerDutyRefusal: a 400 is never retried; Slack still hears of the
// rollback and the message is dead-lettered with PagerDuty's reason.
func TestPagerDutyRefusal(t *testing.T) {
	e := newEnv(t)
	e.pd.Respond(http.StatusBadRequest)
	e.start(nil)
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	e.publish(rel.Rollback)
	e.record(rel.Rollback)

	var reason string
	e.waitFor("dead letter", func() error {
		s, err := e.js.Stream(t.Context(), bus.StreamName)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(t.Context(), bus.DeadLetterSubject(Consumer.Durable))
		if err != nil {
			return err
		}
		reason = m.Header.Get(bus.HeaderDeadLetterReason)
		return nil
	})
	if !strings.Contains(reason, "HTTP 400") || !strings.Contains(reason, "invalid event") || !strings.Contains(reason, "attempt 1") {
		t.Errorf("dead-letter reason %q", reason)
	}
	if e.pd.Requests() != 1 {
		t.Errorf("PagerDuty got %d requests, want 1 (a 400 is not retried)", e.pd.Requests())
	}
	if ms := e.slack.Messages(); len(ms) != 1 || !strings.Contains(string(mustJSON(t, ms[0])), "the PagerDuty page failed") {
		t.Errorf("Slack got %+v, want the rollback report saying the page failed", ms)
	}
	inc := e.incident("r-42")
	if inc == nil || !inc.CompletedAt.IsZero() || !inc.PagedAt.IsZero() || inc.PostedAt.IsZero() || !strings.Contains(inc.LastError, "HTTP 400") {
		t.Errorf("incident = %+v", inc)
	}
	if _, err := e.pageEvent("r-42"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("a page event was published for a failed page: %v", err)
	}
}

// TestLedgerBehind: a rollback the ledger has not recorded pages at once;
// its report is retried until the ledger has it, or, on the last delivery,
// built without it.
func TestLedgerBehind(t *testing.T) {
	t.Run("retried until recorded", func(t *testing.T) {
		e := newEnv(t)
		e.start(func(o *Options) {
			o.LedgerWait = 100 * time.Millisecond
			o.Consumer.MaxDeliver = 50
			o.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
		})
		rel := chaintest.NewRelease(t, "chain-7", "r-42")
		e.publish(rel.Rollback)
		e.record(rel.Events[:3]...)
		// Wait until a delivery has given up on the ledger at least once.
		e.waitFor("a retry", func() error {
			inc := e.incident("r-42")
			if inc == nil || !strings.Contains(inc.LastError, "not recorded the rollback yet") {
				return fmt.Errorf("incident %+v", inc)
			}
			return nil
		})
		if e.pd.Requests() != 1 {
			t.Fatalf("PagerDuty got %d requests while the ledger is behind, want the page", e.pd.Requests())
		}
		if ms := e.slack.Messages(); len(ms) != 0 {
			t.Fatalf("Slack got %d messages before the report", len(ms))
		}
		e.record(rel.Events[3:]...)
		e.waitFor("rollback notified", func() error { return e.completed("r-42") })
		if evs := e.pd.Events(); len(evs) != 2 || !strings.Contains(string(evs[1].Payload.CustomDetails), `"complete":true`) {
			t.Errorf("PagerDuty events %+v, want the page and the complete report", evs)
		}
		js, _ := e.report("r-42", FormatJSON)
		if !bytes.Contains(js, []byte(`"complete": true`)) {
			t.Errorf("report not complete:\n%s", js)
		}
	})
	t.Run("last delivery builds without the ledger", func(t *testing.T) {
		e := newEnv(t)
		e.start(func(o *Options) {
			o.LedgerWait = 50 * time.Millisecond
			o.Consumer.MaxDeliver = 2
			o.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
		})
		rel := chaintest.NewRelease(t, "chain-7", "r-42")
		e.publish(rel.Rollback)
		e.record(rel.Events[:2]...)
		e.waitFor("rollback notified", func() error { return e.completed("r-42") })
		md, _ := e.report("r-42", FormatMarkdown)
		if !bytes.Contains(md, []byte("the ledger had not recorded the rollback event")) || len(e.pd.Events()) != 2 {
			t.Errorf("pages %d; report:\n%s", len(e.pd.Events()), md)
		}
	})
}

// TestPageWithoutLedger: with the ledger down, on-call is paged within a
// second of the rollback all the same; the report waits.
func TestPageWithoutLedger(t *testing.T) {
	e := newEnv(t)
	e.ledger.Stop()
	e.start(nil)
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	e.publish(rel.Rollback)
	natstest.CheckFor(t, time.Second, 5*time.Millisecond, func() error {
		if n := len(e.pd.Events()); n != 1 {
			return fmt.Errorf("%d pages", n)
		}
		return nil
	})
	if ev := e.pd.Events()[0]; ev.DedupKey != "r-42" || !strings.Contains(ev.Payload.Summary, "Rollback of shop in prod") {
		t.Errorf("page = %+v", ev)
	}
	e.waitFor("the page event", func() error {
		_, err := e.pageEvent("r-42")
		return err
	})
	if inc := e.incident("r-42"); inc == nil || inc.PagedAt.IsZero() || !inc.CompletedAt.IsZero() || !inc.ReportedAt.IsZero() {
		t.Errorf("incident = %+v, want paged and waiting for the report", inc)
	}
}

// TestChat: blocked scans, completed releases and anomalies against live
// versions go to Slack; passing scans and anomalies against nothing live do
// not; an app without routes is reported only.
func TestChat(t *testing.T) {
	e := newEnv(t)
	e.start(nil)
	rel := chaintest.NewRelease(t, "chain-9", "r-9")
	meta := func(id string) events.Meta {
		return events.Meta{ID: id, Source: "/rampart/test", Time: chaintest.T0, App: "shop"}
	}
	blocked, err := events.NewScanFinished(meta("scan-blocked"), events.Scan{Target: chaintest.Purl(chaintest.CanaryDigest, "v3"), TargetKind: "image", Environment: "prod",
		Outcome: events.OutcomeBlocked, Reason: "1 critical", Counts: map[string]int{"CRITICAL": 1},
		Findings: []events.Finding{{ID: "CVE-2026-0001", Package: "openssl", InstalledVersion: "3.5.0-r0", FixedVersion: "3.5.1-r0", Severity: "CRITICAL"}}})
	if err != nil {
		t.Fatal(err)
	}
	nothingLive, err := events.NewAnomaly(meta("anomaly-none"), events.Anomaly{Target: events.TargetNone, App: "shop", Environment: "prod", Rule: "siem", Origin: "siem"})
	if err != nil {
		t.Fatal(err)
	}
	released, err := events.NewReleaseCompleted(meta("released"), events.Release{RolloutID: "r-8", App: "shop", Environment: "prod",
		ArtifactID: chaintest.Purl(chaintest.StableDigest, "v1"), Previous: chaintest.Purl(chaintest.CanaryDigest, "v0")})
	if err != nil {
		t.Fatal(err)
	}
	otherApp, err := events.NewReleaseCompleted(events.Meta{ID: "cart-released", Source: "/rampart/test", Time: chaintest.T0, App: "cart"},
		events.Release{RolloutID: "c-1", App: "cart", Environment: "prod", ArtifactID: chaintest.Purl(chaintest.StableDigest, "")})
	if err != nil {
		t.Fatal(err)
	}
	// The consumer handles messages in order, so once the last one is
	// posted every earlier one has been handled.
	e.publish(rel.Scan, blocked, nothingLive, otherApp, rel.Events[6] /* anomaly on the canary */, released)
	e.waitFor("release posted", func() error {
		ms := e.slack.Messages()
		if len(ms) == 0 || !strings.HasPrefix(ms[len(ms)-1].Text, "Released shop") {
			return fmt.Errorf("%d messages", len(ms))
		}
		return nil
	})
	var texts []string
	for _, m := range e.slack.Messages() {
		texts = append(texts, m.Blocks[0].Text.Text)
	}
	if got := strings.Join(texts, "; "); got != "Scan blocked: shop in prod; Anomaly: shop in prod; Released: shop in prod" {
		t.Errorf("Slack messages: %s", got)
	}
	if e.pd.Requests() != 0 {
		t.Errorf("PagerDuty got %d requests; only rollbacks page", e.pd.Requests())
	}
}

func TestOptions(t *testing.T) {
	fs := flag.NewFlagSet("notifier", flag.ContinueOnError)
	o := DefaultOptions()
	o.BindFlags(fs)
	if err := fs.Parse([]string{"--policy", "rampart.yaml", "--report-dir", "reports", "--ledger-wait", "3s"}); err != nil {
		t.Fatal(err)
	}
	if o.PolicyFile != "rampart.yaml" || o.ReportDir != "reports" || o.LedgerWait != 3*time.Second {
		t.Errorf("options = %+v", o)
	}
	for _, bad := range []Options{{LedgerWait: time.Hour}, {Replicas: 2}, {RetryAttempts: -1}, {LedgerURL: "ledger:8080"}, {LedgerCAFile: "missing-ca.crt"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
	if _, err := New(Options{}); err != nil {
		t.Errorf("zero options: %v", err)
	}
}

// TestReportRoute: what the report route refuses, and why.
func TestReportRoute(t *testing.T) {
	get := func(a *App, path string) *httptest.ResponseRecorder {
		mux := http.NewServeMux()
		a.Routes(mux)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	idle, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w := get(idle, ReportPath+"r-1"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("before start: %d %s, want 503", w.Code, w.Body)
	}
	e := newEnv(t)
	a := e.start(nil)
	for _, tt := range []struct {
		path string
		code int
		want string
	}{
		{ReportPath + "r-404", http.StatusNotFound, `no rollback report is stored for rollout "r-404"`},
		{ReportPath + "r-1?format=pdf", http.StatusBadRequest, `format "pdf": want md or json`},
		{ReportPath + strings.Repeat("r", 257), http.StatusBadRequest, "at most 256 printable characters"},
		{ReportPath + "r%0A1", http.StatusBadRequest, "printable"},
	} {
		if w := get(a, tt.path); w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("GET %s: %d %q, want %d with %q", tt.path, w.Code, w.Body, tt.code, tt.want)
		}
	}
}

// TestInvalidPolicyFailsStart: the notifier does not start on a policy that
// does not load.
func TestInvalidPolicyFailsStart(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	path := filepath.Join(t.TempDir(), "rampart.yaml")
	if err := os.WriteFile(path, []byte("version: 1\napps:\n  - name: Shop!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{PolicyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Start(t.Context(), service.Deps{Bus: b, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "rampart.yaml") {
		t.Fatalf("start with an invalid policy: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A new finding in the live release pages on-call: whether or not the
// deployer found a clean release to return to, a human has to know.
// TestLedgerAnomalyPages: an anomaly in the ledger itself (here a message
// in its stream it did not write) pages and posts, once per distinct
// channel, although it names no application: two apps share the channels.
func TestLedgerAnomalyPages(t *testing.T) {
	e := newEnv(t)
	p := e.policy.Current()
	web := p.Apps[0]
	web.Name = "web"
	p.Apps = append(p.Apps, web)
	e.start(nil)
	ev, err := events.NewAnomaly(events.Meta{ID: "ledger-foreign:3:abc", Source: "/rampart/ledger", Time: chaintest.T0, App: "ledger"}, events.Anomaly{
		Target: events.TargetLedger, App: "ledger", Environment: "rampart.ledger", Rule: "ledger-foreign-message", Origin: "ledger",
		Description: "LEDGER message 3, before entry 2, is not an entry this ledger wrote", DetectedAt: chaintest.T0})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(ev)
	e.waitFor("the page and the post", func() error {
		if e.pd.Requests() != 1 || e.slack.Requests() != 1 {
			return fmt.Errorf("%d PagerDuty requests, %d Slack posts", e.pd.Requests(), e.slack.Requests())
		}
		return nil
	})
	// Once the notifier has handled the event, that is still all.
	e.waitFor("the event handled", func() error {
		c, err := e.js.Consumer(t.Context(), bus.StreamName, "notifier")
		if err != nil {
			return err
		}
		info, err := c.Info(t.Context())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if e.pd.Requests() != 1 || e.slack.Requests() != 1 {
		t.Fatalf("%d PagerDuty requests, %d Slack posts; want one each", e.pd.Requests(), e.slack.Requests())
	}
	got := e.pd.Events()[0]
	if got.DedupKey != "ledger:ledger-foreign:3:abc" || got.Payload.Severity != "critical" ||
		!strings.Contains(got.Payload.Summary, "Rampart ledger: LEDGER message 3, before entry 2, is not an entry this ledger wrote") {
		t.Fatalf("page %+v", got)
	}
}

func TestLiveReleaseFindingPages(t *testing.T) {
	e := newEnv(t)
	e.start(nil)
	live := chaintest.Purl(chaintest.StableDigest, "v1")
	ev, err := events.NewAnomaly(events.Meta{ID: "cve-live", Source: "/rampart/scanner", Time: chaintest.T0, App: "shop"}, events.Anomaly{
		Target: events.TargetRelease, App: "shop", Environment: "prod", ArtifactID: live, Rule: "cve", Origin: "scanner",
		Description: "CVE-2026-0002 (CRITICAL) in openssl 3.5.0-r0", DetectedAt: chaintest.T0})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(ev)
	e.waitFor("the page", func() error {
		if e.pd.Requests() != 1 {
			return fmt.Errorf("%d PagerDuty requests", e.pd.Requests())
		}
		return nil
	})
	got := e.pd.Events()[0]
	if got.DedupKey != "live:shop:"+live || got.Payload.Severity != "critical" || !strings.Contains(got.Payload.Summary, "CVE-2026-0002") {
		t.Fatalf("page %+v", got)
	}
}
