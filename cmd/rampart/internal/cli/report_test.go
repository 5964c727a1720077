package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	notifier "github.com/rampartci/rampart/services/notifier/app"
)

// startNotifier runs the notifier service against m, without a policy: it
// stores reports and notifies nobody. It returns the notifier's HTTP URL.
func startNotifier(t *testing.T, m *mesh, ledgerURL, reportDir string) string {
	t.Helper()
	n, err := notifier.New(notifier.Options{ReportDir: reportDir, LedgerURL: ledgerURL, LedgerWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sopts := service.DefaultOptions("notifier-test")
	sopts.NATSURL = m.url
	sopts.NATS = natstest.Identity(t, m.ns, "notifier")
	sopts.HTTPAddr = "127.0.0.1:0"
	h, err := service.Start(t.Context(), sopts, slog.New(slog.DiscardHandler), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("stopping the notifier: %v", err)
		}
	})
	return "http://" + h.HTTPAddr()
}

// rolledBack is a release of shop that was promoted, stepped to 5% and
// rolled back on a 5xx ratio over its threshold.
func rolledBack(t *testing.T, rollout, chain string) []cloudevents.Event {
	t.Helper()
	t0 := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	stable := "pkg:oci/shop@sha256%3A" + strings.Repeat("a", 64) + "?repository_url=127.0.0.1%3A5000/shop"
	canary := "pkg:oci/shop@sha256%3A" + strings.Repeat("b", 64) + "?repository_url=127.0.0.1%3A5000/shop"
	meta := func(id string, d time.Duration) events.Meta {
		return events.Meta{ID: rollout + "-" + id, Source: "/test", Time: t0.Add(d), ChainID: chain, App: "shop"}
	}
	observed, threshold := 0.05, 0.01
	anomaly := events.Anomaly{Target: events.TargetCanary, App: "shop", Environment: "prod", ArtifactID: canary, RolloutID: rollout,
		Rule: "http-5xx-ratio", Origin: "scrape", Observed: &observed, Threshold: &threshold, DetectedAt: t0.Add(9 * time.Second)}
	var evs []cloudevents.Event
	add := func(ev cloudevents.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	add(events.NewPromoted(meta("promote", 0), events.Promotion{RolloutID: rollout, App: "shop", Environment: "prod", ArtifactID: canary, Previous: stable, Steps: []int{5, 100}}))
	add(events.NewCanaryStepped(meta("step", time.Second), events.CanaryStep{RolloutID: rollout, App: "shop", Environment: "prod", ArtifactID: canary, Stable: stable, Weight: 5}))
	add(events.NewAnomaly(meta("anomaly", 9*time.Second), anomaly))
	add(events.NewRollback(meta("rollback", 9*time.Second+5*time.Millisecond), events.Rollback{RolloutID: rollout, App: "shop", Environment: "prod",
		ArtifactID: stable, From: canary, TrafficAtAbort: 5, Trigger: anomaly, AnomalyID: rollout + "-anomaly"}))
	return evs
}

// TestReportRollback runs the real ledger and notifier: the report the
// notifier stored, with the ledger's indexes, is what the command prints.
func TestReportRollback(t *testing.T) {
	m := newMesh(t)
	_, ledgerURL, _ := startLedger(t, m)
	dir := t.TempDir()
	notifierURL := startNotifier(t, m, ledgerURL, dir)
	for _, ev := range rolledBack(t, "r-1", "rel-1") {
		if _, err := m.bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}

	var md result
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		md = rampart(t, t.Context(), "", "report", "rollback", "r-1", "--server", notifierURL)
		if md.code != 0 {
			return errors.New(md.stderr)
		}
		return nil
	})
	for _, want := range []string{"# Rollback: shop in prod", "| Traffic at abort | 5% |", "| `http-5xx-ratio` | scrape | 0.05 | 0.01 |"} {
		if !strings.Contains(md.stdout, want) {
			t.Errorf("Markdown report lacks %q:\n%s", want, md.stdout)
		}
	}
	rows := regexp.MustCompile(`(?m)^\| (\d+) \| [^|]+ \| [^|]+ \| (\w+) \|`).FindAllStringSubmatch(md.stdout, -1)
	var timeline []string
	for _, r := range rows {
		timeline = append(timeline, r[1]+":"+r[2])
	}
	if got := strings.Join(timeline, " "); got != "0:promote 1:canarystep 2:anomaly 3:rollback" {
		t.Errorf("timeline (ledger index:kind) = %s\n%s", got, md.stdout)
	}

	js := rampart(t, t.Context(), "", "report", "rollback", "--format", "json", "--server", notifierURL, "r-1")
	var rep struct {
		RolloutID string `json:"rolloutId"`
		Versions  struct {
			From struct{ Digest string } `json:"from"`
		} `json:"versions"`
		Ledger struct {
			Complete      bool    `json:"complete"`
			RollbackIndex *uint64 `json:"rollbackIndex"`
		} `json:"ledger"`
	}
	if js.code != 0 || json.Unmarshal([]byte(js.stdout), &rep) != nil {
		t.Fatalf("--format json: exit %d: %s%s", js.code, js.stdout, js.stderr)
	}
	if rep.RolloutID != "r-1" || !rep.Ledger.Complete || rep.Ledger.RollbackIndex == nil || *rep.Ledger.RollbackIndex != 3 ||
		rep.Versions.From.Digest != "sha256:"+strings.Repeat("b", 64) {
		t.Errorf("JSON report = %+v", rep)
	}
	for name, want := range map[string]string{"r-1.md": md.stdout, "r-1.json": js.stdout} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s differs from what the command printed (%v)", name, err)
		}
	}

	unknown := rampart(t, t.Context(), "", "report", "rollback", "r-404", "--server", notifierURL)
	if unknown.code != 1 || !strings.Contains(unknown.stderr, `no rollback report is stored for rollout "r-404"`) {
		t.Errorf("unknown rollout: exit %d: %s", unknown.code, unknown.stderr)
	}
}

func TestReportRollbackErrors(t *testing.T) {
	m := newMesh(t)
	ledgerURL := "http://127.0.0.1:1"
	notifierURL := startNotifier(t, m, ledgerURL, t.TempDir())
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report", "rollback", "--server", notifierURL}, 2, "want one ROLLOUT-ID"},
		{[]string{"report", "rollback", "r-1", "r-2", "--server", notifierURL}, 2, "want one ROLLOUT-ID"},
		{[]string{"report", "rollback", "r-1", "--format", "pdf", "--server", notifierURL}, 2, `--format "pdf"`},
		{[]string{"report", "rollback", "r-1", "--server", "nats://127.0.0.1:4222"}, 2, "is not an http(s) URL"},
		{[]string{"report", "rollback", "r-1", "--server", notifierURL}, 1, `no rollback report is stored for rollout "r-1"`},
		{[]string{"report", "rollback", "r-1", "--server", "http://127.0.0.1:1"}, 1, "is `rampart up` running?"},
	}
	for _, tt := range tests {
		r := rampart(t, t.Context(), "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("rampart %s: exit %d, stderr %q; want exit %d with %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.want)
		}
	}
}
