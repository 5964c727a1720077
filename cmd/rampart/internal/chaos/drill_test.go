package chaos_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/cmd/rampart/internal/chaos"
	"github.com/rampartci/rampart/cmd/rampart/internal/cli"
	"github.com/rampartci/rampart/cmd/rampart/internal/demo"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// drillEnv is a demo environment (the whole mesh, the demo application
// behind the deployer's local router, real traffic) with v1 released, and
// a chaos.Mesh reaching it as `rampart chaos run` does.
type drillEnv struct {
	*demo.Env
	mesh    *chaos.Mesh
	ledger  *client.Client
	release int
}

func startDrillEnv(t *testing.T) *drillEnv {
	t.Helper()
	dir := t.TempDir()
	e, err := demo.Start(t.Context(), demo.Config{DataDir: dir, Pause: time.Hour, Interval: time.Second, RPS: 200, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	token := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	hc, url := e.Mesh.HTTPClient, e.Mesh.HTTPURL()
	rollouts, err := adminapi.NewClient(url, token("deployer/viewer.token"), hc)
	if err != nil {
		t.Fatal(err)
	}
	faults, _ := adminapi.NewClient(url, token("deployer/chaos.token"), hc)
	ledger, err := client.New(url, hc)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := e.Mesh.Admin.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.Mesh.NATSURL, append(auth, nats.RootCAs(e.Mesh.CAFile))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := bus.New(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	de := &drillEnv{Env: e, ledger: ledger, mesh: &chaos.Mesh{Rollouts: rollouts, Faults: faults, Bus: b, Ledger: ledger, HTTP: hc,
		Components: &chaos.Components{Base: url, Token: token("deployer/chaos.token"), HTTP: hc},
		SIEMURL:    url + "/hooks/siem", SIEMSecret: token("watcher/siem.secret"), PageWait: 20 * time.Second}}
	v1 := de.push(t)
	if err := e.PromoteThrough(t.Context(), v1, 4, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return de
}

// push releases the next clean version and returns its rollout, promoted.
func (e *drillEnv) push(t *testing.T) demo.Approved {
	t.Helper()
	e.release++
	_, verdict, a, err := e.PushAndWait(t.Context(), demo.Image{Version: fmt.Sprintf("v%d", e.release)}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if verdict.Outcome != events.OutcomePass {
		t.Fatalf("verdict on v%d: %s", e.release, verdict.Outcome)
	}
	return a
}

func experiment(t *testing.T, doc string) chaos.Experiment {
	t.Helper()
	f, err := chaos.Parse("drill.yaml", []byte("version: 1\nexperiments:\n  - "+strings.ReplaceAll(strings.TrimSpace(doc), "\n", "\n    ")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	return f.Experiments[0]
}

// Each fault kind, injected into a live canary of the demo application
// through the real router, webhook or application, is detected, rolled back
// within the drill's time, paged once and recorded in the ledger; the
// drill's result is recorded there too. A drill whose fault stays under the
// watcher's threshold is not detected: it reports failure, and pages.
func TestDrills(t *testing.T) {
	e := startDrillEnv(t)
	for _, tc := range []struct {
		kind, fault string
	}{
		{chaos.FaultHTTPErrors, "{kind: http-errors, ratio: 0.2}"},
		{chaos.FaultLatency, "{kind: latency, latency: 500ms}"},
		{chaos.FaultMemory, "{kind: memory, hook: '%s/admin/grow?mb=64'}"},
		{chaos.FaultSIEM, "{kind: siem, severity: critical}"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			a := e.push(t)
			fault := tc.fault
			if strings.Contains(fault, "%s") {
				fault = fmt.Sprintf(fault, e.CanaryURL())
			}
			exp := experiment(t, fmt.Sprintf("name: drill-%s\ntarget: {app: shop, wait: 30s}\nfault: %s\nexpect: {rollbackWithin: 30s, pages: 1}", tc.kind, fault))
			d, err := e.mesh.Run(t.Context(), exp)
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != events.DrillPassed || d.RolloutID != a.RolloutID {
				t.Fatalf("drill on %s: %s", a.RolloutID, d.Text())
			}
			if d.DetectedInMs == nil || d.RolledBackInMs == nil || *d.DetectedInMs > *d.RolledBackInMs || d.Pages != 1 || !d.LedgerRecorded {
				t.Fatalf("drill measured %+v", d)
			}
			if w, _ := e.Mesh.Deployer.Weight(demo.App); w != 0 {
				t.Fatalf("canary weight %d after the drill", w)
			}
			e.checkRecorded(t, d)
			t.Logf("%s", d.Text())
		})
	}

	t.Run("undetected", func(t *testing.T) {
		a := e.push(t)
		// 0.5% of the canary's requests fail: under the watcher's 1%.
		exp := experiment(t, "name: too-quiet\ntarget: {app: shop, wait: 30s}\nfault: {kind: http-errors, ratio: 0.005}\nexpect: {rollbackWithin: 6s}")
		d, err := e.mesh.Run(t.Context(), exp)
		if err != nil {
			t.Fatal(err)
		}
		if d.Outcome != events.DrillFailed || d.RolledBackInMs != nil || !strings.Contains(d.Reason, "not rolled back within 6s") {
			t.Fatalf("an undetected fault: %s", d.Text())
		}
		e.checkRecorded(t, d)
		e.checkPaged(t, d)
		// The fault ended with the drill: the canary is healthy again.
		if _, err := e.mesh.Faults.Fault(t.Context(), demo.App); err != nil {
			t.Fatal(err)
		}
		if s, _ := e.mesh.Faults.Fault(t.Context(), demo.App); s.Active {
			t.Fatalf("fault still in force after the drill: %+v", s)
		}
		abort(t, e, a)
	})

	t.Run("cli", func(t *testing.T) {
		e.push(t)
		e.chaosRun(t, "version: 1\nexperiments:\n  - name: canary-5xx\n    target: {app: shop, wait: 30s}\n    fault: {kind: http-errors, ratio: 0.2}\n    expect: {rollbackWithin: 30s, pages: 1}\n",
			"chaos drill canary-5xx (http-errors): passed; detected in ")
	})
}

// chaosRun runs `rampart chaos run` on the chaos file doc against the
// environment, as an operator would, and checks that it passes and prints
// each of want.
func (e *drillEnv) chaosRun(t *testing.T, doc string, want ...string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "drills.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := cli.Main(t.Context(), []string{"chaos", "run", file, "--server", e.Mesh.HTTPURL(), "--data", e.DataDir(),
		"--nats", e.Mesh.NATSURL, "--nats-nkey", natsauth.KeyFile(filepath.Join(e.DataDir(), "nats-keys"), natsauth.Admin), "--ca-file", e.Mesh.CAFile},
		strings.NewReader(""), &out, &errOut)
	for _, w := range want {
		if code != 0 || !strings.Contains(out.String(), w) {
			t.Fatalf("rampart chaos run: exit %d, want %q\n%s%s", code, w, out.String(), errOut.String())
		}
	}
	t.Logf("$ rampart chaos run drills.yaml\n%s", out.String())
}

// checkRecorded checks that the ledger holds the drill's result in the
// release's chain.
func (e *drillEnv) checkRecorded(t *testing.T, d events.Drill) {
	t.Helper()
	ro, err := e.mesh.Rollouts.Rollout(t.Context(), d.RolloutID)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(t, 20*time.Second, func() bool {
		chain, err := e.ledger.Chain(t.Context(), ro.ChainID)
		if err != nil {
			return false
		}
		for _, en := range chain {
			if en.EventID == "drill-"+d.DrillID && en.Type == events.TypeDrillFinished {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the ledger lacks drill %s: %v", d.DrillID, err)
	}
}

// checkPaged checks that the failed drill d paged.
func (e *drillEnv) checkPaged(t *testing.T, d events.Drill) {
	t.Helper()
	if err := waitFor(t, 20*time.Second, func() bool {
		for _, p := range e.Pages() {
			if p["dedup_key"] == "drill:"+d.DrillID {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the failed drill did not page: %v", err)
	}
}

// abort rolls the rollout back through the operator API, so the next
// release starts from a stable app.
func abort(t *testing.T, e *drillEnv, a demo.Approved) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(e.DataDir(), "deployer", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	op, _ := adminapi.NewClient(e.Mesh.HTTPURL(), strings.TrimSpace(string(token)), e.Mesh.HTTPClient)
	if _, err := op.Act(t.Context(), a.RolloutID, adminapi.ActionAbort, "drill test done"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitEnd(t.Context(), a, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, f func() bool) error {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-t.Context().Done():
			return t.Context().Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
