package chaos_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/chaos"
	"github.com/rampartci/rampart/cmd/rampart/internal/cli"
	"github.com/rampartci/rampart/cmd/rampart/internal/demo"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// A drill kills the deployer, then the watcher, while a canary is at 5%,
// through the host's kill route on the mesh's listener (the chaos token),
// and injects 20% errors at the router: each killed component is started
// again after its downtime and the pipeline still detects the fault, rolls
// back once, pages once and records it, with the drill's result in the
// release's chain. Killing the deployer stops its router too: the fault
// goes to the restarted router, so the rollback proves the deployer resumed
// the canary at its recorded weight; a SIEM alert's anomaly published while
// the deployer is down is acted on once it is back. Killing the watcher
// leaves the fault undetected until it is back: it is detected after the
// restart, from the live canaries the watcher rebuilt from the stream. A
// drill whose threshold leaves the restarted watcher too little time
// fails, and pages. Killing the notifier delays the page, not the
// rollback: it pages once it is back.
func TestKillDrills(t *testing.T) {
	e := startDrillEnv(t)
	// The kill route is the chaos token's alone.
	operator, err := os.ReadFile(filepath.Join(e.DataDir(), "deployer", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	stolen := &chaos.Components{Base: e.Mesh.HTTPURL(), Token: strings.TrimSpace(string(operator)), HTTP: e.Mesh.HTTPClient}
	if _, err := stolen.Kill(t.Context(), chaos.KillDeployer, time.Second); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the operator's token killed the deployer: %v", err)
	}
	for _, tc := range []struct{ name, target, fault string }{
		{"deployer", chaos.KillDeployer, "kind: http-errors, ratio: 0.2"},
		{"watcher", chaos.KillWatcher, "kind: http-errors, ratio: 0.2"},
		// The alert's anomaly comes while the deployer is down and waits
		// in its durable consumer.
		{"deployer siem", chaos.KillDeployer, "kind: siem"},
		// The pipeline rolls back without the notifier; the rollback
		// waits in its durable consumer and pages once it is back.
		{"notifier", chaos.KillNotifier, "kind: siem"},
	} {
		target := tc.target
		t.Run(tc.name, func(t *testing.T) {
			a := e.push(t)
			exp := experiment(t, fmt.Sprintf("name: kill-%s\ntarget: {app: shop, wait: 30s}\nfault: {%s, kill: %s, downtime: 3s}\nexpect: {rollbackWithin: 30s, pages: 1}", target, tc.fault, target))
			d, err := e.mesh.Run(t.Context(), exp)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", d.Text())
			if d.Outcome != events.DrillPassed || d.RolloutID != a.RolloutID || d.Fault != "kill-"+target || d.DowntimeMs != 3000 {
				t.Fatalf("drill on %s: %+v", a.RolloutID, d)
			}
			if d.RestartedInMs == nil || *d.RestartedInMs < 3000 || d.DetectedInMs == nil || d.RolledBackInMs == nil || d.Pages != 1 || !d.LedgerRecorded {
				t.Fatalf("drill measured %+v", d)
			}
			// Nothing rolled back while the deployer was down, nothing was
			// detected while the watcher was; without the notifier the
			// canary was rolled back, and paged (d.Pages) once it was back.
			switch after := *d.RolledBackInMs; target {
			case chaos.KillNotifier:
				if after >= *d.RestartedInMs {
					t.Fatalf("rolled back %d ms after the kill, not while the notifier was down (back at %d ms)", after, *d.RestartedInMs)
				}
			default:
				if target == chaos.KillWatcher {
					after = *d.DetectedInMs
				}
				if after < *d.RestartedInMs {
					t.Fatalf("acted on %d ms after the kill, before the %s was back at %d ms", after, target, *d.RestartedInMs)
				}
			}
			if tc.fault == "kind: siem" && *d.DetectedInMs >= *d.RestartedInMs {
				t.Fatalf("the alert's anomaly came at %d ms, not while the %s was down (back at %d ms)", *d.DetectedInMs, target, *d.RestartedInMs)
			}
			s, err := e.Mesh.Host.Component(target)
			if err != nil || !s.Running || s.Restarts < 1 {
				t.Fatalf("the %s after the drill: %+v %v", target, s, err)
			}
			if w, _ := e.Mesh.Deployer.Weight(demo.App); w != 0 {
				t.Fatalf("canary weight %d after the drill", w)
			}
			ro, err := e.mesh.Rollouts.Rollout(t.Context(), a.RolloutID)
			if err != nil || ro.Phase != adminapi.PhaseRolledBack {
				t.Fatalf("rollout after the drill: %+v %v", ro, err)
			}
			e.checkRecorded(t, d)
		})
	}

	t.Run("cli", func(t *testing.T) {
		e.push(t)
		e.chaosRun(t, "version: 1\nexperiments:\n  - name: deployer-killed\n    target: {app: shop, wait: 30s}\n    fault: {kind: http-errors, ratio: 0.2, kill: deployer, downtime: 2s}\n    expect: {rollbackWithin: 30s, pages: 1}\n",
			"drill deployer-killed: killed the deployer for 2s", "chaos drill deployer-killed (kill-deployer): passed; restarted in ")
	})

	// The compliance report shows the drills in their releases' stories.
	t.Run("compliance", func(t *testing.T) {
		natstest.CheckFor(t, 60*time.Second, 500*time.Millisecond, func() error {
			var out, errOut bytes.Buffer
			code := cli.Main(t.Context(), []string{"report", "compliance", "--server", e.Mesh.HTTPURL(), "--ca-file", e.Mesh.CAFile,
				"--key", filepath.Join(e.DataDir(), "ledger", "ledger.key.pub"), "--since", "1h", "--format", "md"}, strings.NewReader(""), &out, &errOut)
			if code != 0 {
				return fmt.Errorf("exit %d: %s", code, errOut.String())
			}
			for _, want := range []string{"chaos drill kill-deployer (kill-deployer): passed; restarted in ", "chaos drill kill-watcher (kill-watcher): passed; restarted in "} {
				if !strings.Contains(out.String(), want) {
					return fmt.Errorf("the report lacks %q", want)
				}
			}
			return nil
		})
	})

	t.Run("too tight", func(t *testing.T) {
		e.push(t)
		// Back after 2s, the watcher opens a new window and needs 20
		// canary requests in it (2s at 10 a second): no rollback can come
		// within 3s.
		exp := experiment(t, "name: watcher-too-tight\ntarget: {app: shop, wait: 30s}\nfault: {kind: http-errors, ratio: 0.2, kill: watcher, downtime: 2s}\nexpect: {rollbackWithin: 3s}")
		d, err := e.mesh.Run(t.Context(), exp)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", d.Text())
		if d.Outcome != events.DrillFailed || d.RolledBackInMs != nil || d.RestartedInMs == nil || !strings.Contains(d.Reason, "not rolled back within 3s") {
			t.Fatalf("a drill with too tight a threshold: %+v", d)
		}
		e.checkRecorded(t, d)
		e.checkPaged(t, d)
	})
}
