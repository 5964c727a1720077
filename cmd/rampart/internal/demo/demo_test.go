package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

func startEnv(t *testing.T, pause time.Duration, rps int) *Env {
	t.Helper()
	return startEnvLogging(t, pause, rps, slog.DiscardHandler)
}

// startEnvLogging is startEnv with the services' logs going to h.
func startEnvLogging(t *testing.T, pause time.Duration, rps int, h slog.Handler) *Env {
	t.Helper()
	e, err := Start(t.Context(), Config{DataDir: t.TempDir(), Pause: pause, Interval: time.Second, RPS: rps,
		Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// release pushes a clean version and waits until the deployer promotes it.
func (e *Env) release(t *testing.T, version string, failRatio float64) Approved {
	t.Helper()
	_, verdict, a, err := e.PushAndWait(t.Context(), Image{Version: version, FailRatio: failRatio}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if verdict.Outcome != events.OutcomePass {
		t.Fatalf("verdict on %s: %s (%s)", version, verdict.Outcome, verdict.Reason)
	}
	verifyWithLibraries(t, e, verdict)
	return a
}

// canary releases v1 to 100%, then v2, and waits for v2's canary at 5%,
// where it stays (the env's pause is an hour).
func (e *Env) canary(t *testing.T) Approved {
	t.Helper()
	v1 := e.release(t, "v1", 0)
	if err := e.PromoteThrough(t.Context(), v1, 4, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	a := e.release(t, "v2", 0)
	if err := e.WaitStep(t.Context(), a, 0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// waitPage waits for on-call to be paged about rollout.
func (e *Env) waitPage(t *testing.T, rollout string) {
	t.Helper()
	if err := waitUntil(t.Context(), 20*time.Second, "a page for "+rollout, func() bool {
		for _, p := range e.pager.pages() {
			if p["dedup_key"] == rollout {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
}

// Each fault, injected into the canary at a different step, is detected and
// rolled back, with traffic back on the stable version and on-call paged.
func TestInjectedFailuresAreRolledBack(t *testing.T) {
	e := startEnv(t, time.Hour, 200) // steps advance only when the test promotes them
	v1 := e.release(t, "v1", 0)
	if err := e.PromoteThrough(t.Context(), v1, 4, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		failure Failure
		step    int
		rule    string
	}{
		{Fail5xx, 0, "http-5xx-ratio"},
		{FailMemory, 1, "memory-ratio"},
		{FailSIEM, 2, "siem"},
	} {
		t.Run(string(tc.failure), func(t *testing.T) {
			a := e.release(t, fmt.Sprintf("v%d", i+2), 0)
			for s := 0; s < tc.step; s++ {
				if err := e.WaitStep(t.Context(), a, s, 20*time.Second); err != nil {
					t.Fatal(err)
				}
				if err := e.Promote(t.Context(), a.RolloutID); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.WaitStep(t.Context(), a, tc.step, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := e.Inject(t.Context(), tc.failure, "siem-alert-"+a.RolloutID); err != nil {
				t.Fatal(err)
			}
			end, err := e.WaitEnd(t.Context(), a, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := events.RollbackOf(end.Event)
			if err != nil {
				t.Fatalf("rollout completed despite %s: %v", tc.failure, err)
			}
			if rb.Trigger.Rule != tc.rule || rb.TrafficAtAbort != []int{5, 25, 50, 100}[tc.step] {
				t.Fatalf("rollback trigger %q at %d%%, want %q at step %d", rb.Trigger.Rule, rb.TrafficAtAbort, tc.rule, tc.step)
			}
			if w, _ := e.Mesh.Deployer.Weight(App); w != 0 {
				t.Fatalf("canary weight %d after rollback", w)
			}
			if e.work.stable.Version() != "v1" {
				t.Fatalf("stable slot runs %q", e.work.stable.Version())
			}
			e.waitPage(t, a.RolloutID)
		})
	}
}

// A flood of duplicate Alertmanager deliveries of one alert is one anomaly,
// one rollback and one page.
func TestAlertmanagerFloodRollsBackOnce(t *testing.T) {
	e := startEnv(t, time.Hour, 0)
	a := e.canary(t)
	if err := e.waitWatcherLive(t.Context(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	startsAt := time.Now().Add(-time.Minute)
	for range 100 {
		if _, err := e.Alert(t.Context(), "f00dfeed", startsAt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.WaitEnd(t.Context(), a, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// One incident: the page, then its report on the same dedup key.
	if err := waitUntil(t.Context(), 20*time.Second, "the page and its report", func() bool { return len(e.pager.pages()) == 2 }); err != nil {
		t.Fatal(err)
	}
	// Let the page event land, then count: everything after the flood is settled.
	if _, _, err := e.rec.wait(t.Context(), 20*time.Second, 0, ofKind(events.KindPage)); err != nil {
		t.Fatal(err)
	}
	if n := e.rec.count(ofKind(events.KindAnomaly)); n != 1 {
		t.Fatalf("%d anomalies from 100 deliveries of one alert", n)
	}
	if n := e.rec.count(ofKind(events.KindRollback)); n != 1 {
		t.Fatalf("%d rollbacks", n)
	}
	if inc := e.pager.incidents(); len(inc) != 1 || len(e.pager.pages()) != 2 {
		t.Fatalf("PagerDuty incidents %v, want one with the page and its report", inc)
	}
	if !strings.Contains(fmt.Sprint(e.pager.pages()[0]["payload"]), App) {
		t.Fatalf("page does not name the app: %v", e.pager.pages()[0])
	}
}

// A candidate that breaks a field its frontend reads passes its image scan,
// is deployed to staging, fails the frontend's contract there (the spec it
// serves still promises the field) and never reaches production: v1 keeps
// serving, the canary never gets traffic. The DAST of staging passes.
func TestContractBreakStoppedInStaging(t *testing.T) {
	e := startEnv(t, time.Hour, 0)
	v1 := e.release(t, "v1", 0)
	if err := e.PromoteThrough(t.Context(), v1, 4, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	v4, err := e.PushToStaging(t.Context(), Image{Version: "v4", PriceField: "cost"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v4.Image.Outcome != events.OutcomePass || v4.Stage.Outcome != events.OutcomeBlocked {
		t.Fatalf("v4: image %s, staging %s (%s)", v4.Image.Outcome, v4.Stage.Outcome, v4.Stage.Reason)
	}
	if len(v4.Stage.Findings) != 1 || v4.Stage.Findings[0].ID != "rampart-contract/frontend" ||
		!strings.Contains(v4.Stage.Findings[0].Title, "items[0].price is missing") {
		t.Fatalf("staging findings = %+v", v4.Stage.Findings)
	}
	if err := e.StoppedInStaging(t.Context(), v4, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if e.work.stable.Version() != "v1" || e.work.staging.Version() != "v4" || e.work.canary.Version() != "v1" {
		t.Fatalf("stable %s, canary %s, staging %s", e.work.stable.Version(), e.work.canary.Version(), e.work.staging.Version())
	}
	// Real users still get v1's answers, price included.
	resp, err := e.Mesh.HTTPClient.Get("http://" + e.Router + "/api/items")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = io.Copy(&body, resp.Body)
	if !strings.Contains(body.String(), `"price"`) {
		t.Fatalf("production answers %s", body.String())
	}
}

// The demo as `make demo DEMO_FLAGS=--keep` runs it, with shorter pauses:
// every claim it prints is checked by Run itself (a blocked commit, v1
// released, v2 rolled back with a page and a report, v3 blocked and never
// promoted, the ledger verified); then the console keeps serving until the
// context ends.
func TestRun(t *testing.T) {
	out := &syncBuilder{}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dataDir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, out, RunOptions{DataDir: dataDir, Pause: 2 * time.Second, RPS: 400, Keep: true, Logger: slog.New(slog.DiscardHandler)})
	}()
	deadline := time.Now().Add(4 * time.Minute)
	for !strings.Contains(out.String(), "press Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("the demo ended before keeping the console: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no end of the demo after 4 minutes:\n%s", out.String())
		}
	}
	for _, want := range []string{"scan of commit ", ": blocked, 2 critical", "release completed: shop@", "rollback", "on-call paged", "v3 never reached the router", "deployed to staging", "v4 stopped in staging", "signed checkpoints verified", "Rollback report: ", "/console/ (log in with the token in ", "Compliance report: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
	checkComplianceReport(t, dataDir)
	// The console still answers while the demo keeps it.
	_, rest, _ := strings.Cut(out.String(), "The console stays at ")
	consoleURL, _, _ := strings.Cut(rest, " ")
	hc, err := tlsgen.HTTPClient(filepath.Join(mesh.TLSDir(dataDir), "ca.crt"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(consoleURL + "login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %slogin while kept: %s", consoleURL, resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("the demo after Ctrl-C: %v", err)
	}
}

// syncBuilder is a strings.Builder safe to read while Run writes to it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
