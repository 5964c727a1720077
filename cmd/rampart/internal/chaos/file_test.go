package chaos_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/chaos"
)

const good = `version: 1
every: 24h
experiments:
  - name: canary-5xx
    target: {app: shop}
    fault: {kind: http-errors, ratio: 0.2}
    expect: {rollbackWithin: 30s}
  - name: siem
    target: {app: shop, stage: production, wait: 1m}
    fault: {kind: siem}
    expect: {rollbackWithin: 10s, pages: 1, ledger: true}
`

func TestParseFillsDefaults(t *testing.T) {
	f, err := chaos.Parse("drills.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(f.Every) != 24*time.Hour || len(f.Experiments) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	e := f.Experiments[0]
	if time.Duration(e.Target.Wait) != 5*time.Minute || time.Duration(e.Fault.For) != 2*time.Minute || e.Expect.WantPages() != 1 || !e.Expect.WantLedger() {
		t.Fatalf("defaults not filled: %+v", e)
	}
	if s := f.Experiments[1].Fault.Severity; s != "high" {
		t.Fatalf("siem severity %q, want high", s)
	}
}

// A kill takes 5s of downtime unless told, and is recorded as
// kill-<component>.
func TestParseKill(t *testing.T) {
	f, err := chaos.Parse("drills.yaml", []byte("version: 1\nexperiments:\n  - name: k\n    target: {app: shop}\n    fault: {kind: http-errors, ratio: 0.2, kill: deployer}\n    expect: {rollbackWithin: 30s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fault := f.Experiments[0].Fault
	if time.Duration(fault.Downtime) != 5*time.Second || fault.Recorded() != "kill-deployer" ||
		fault.Detail() != "the deployer killed for 5s; once it is back, 20% of canary requests answer 500 at the router" {
		t.Fatalf("kill parsed as %+v: %q", fault, fault.Detail())
	}
	// A killed notifier is not on the rollback's path: the rollback may be
	// expected before it is back.
	f, err = chaos.Parse("drills.yaml", []byte("version: 1\nexperiments:\n  - name: k\n    target: {app: shop}\n    fault: {kind: http-errors, ratio: 0.2, kill: notifier, downtime: 20s}\n    expect: {rollbackWithin: 10s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fault := f.Experiments[0].Fault; fault.Recorded() != "kill-notifier" ||
		fault.Detail() != "the notifier killed for 20s; meanwhile, 20% of canary requests answer 500 at the router" {
		t.Fatalf("notifier kill parsed as %+v: %q", fault, fault.Detail())
	}
}

// Every problem is reported at its line, and the file is refused whole.
func TestParseErrorsAtTheirLine(t *testing.T) {
	head := "version: 1\nexperiments:\n  - name: x\n    target: {app: shop}\n"
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"empty", "", []string{"drills.yaml: the chaos file is empty"}},
		{"not yaml", "version: [1", []string{"drills.yaml:1:"}},
		{"version", "version: 2\nexperiments:\n  - name: x\n    target: {app: shop}\n    fault: {kind: siem}\n    expect: {rollbackWithin: 5s}\n", []string{"drills.yaml:1: version 2"}},
		{"unknown field", head + "    fault: {kind: siem, colour: red}\n    expect: {rollbackWithin: 5s}\n", []string{"drills.yaml:5: field colour not found"}},
		{"unknown kind", head + "    fault: {kind: meteor}\n    expect: {rollbackWithin: 5s}\n", []string{`drills.yaml:5: experiment "x": fault.kind "meteor"`}},
		{"ratio", head + "    fault:\n      kind: http-errors\n      ratio: 2\n    expect: {rollbackWithin: 5s}\n", []string{`drills.yaml:7: experiment "x": fault.ratio 2`}},
		{"wrong parameter", head + "    fault:\n      kind: siem\n      latency: 1s\n    expect: {rollbackWithin: 5s}\n", []string{`drills.yaml:7: experiment "x": fault.latency does not apply to a siem fault`}},
		{"bad duration", head + "    fault: {kind: siem}\n    expect:\n      rollbackWithin: soon\n", []string{`drills.yaml:7: "soon" is not a duration`}},
		{"no expectation", head + "    fault: {kind: siem}\n", []string{`drills.yaml:3: experiment "x": expect.rollbackWithin`}},
		{"bad app", "version: 1\nexperiments:\n  - name: x\n    target:\n      app: Shop!\n    fault: {kind: siem}\n    expect: {rollbackWithin: 5s}\n", []string{`drills.yaml:5: experiment "x": invalid name`}},
		{"hook", head + "    fault: {kind: memory, hook: 'file:///etc/passwd'}\n    expect: {rollbackWithin: 5s}\n", []string{`drills.yaml:5: experiment "x": fault.hook`}},
		{"long fault", head + "    fault: {kind: latency, latency: 1s, for: 1h}\n    expect: {rollbackWithin: 5s}\n", []string{`drills.yaml:5: experiment "x": fault.for 1h0m0s`}},
		{"kill what", head + "    fault: {kind: siem, kill: ledger}\n    expect: {rollbackWithin: 10s}\n", []string{`drills.yaml:5: experiment "x": fault.kill "ledger": want one of deployer, watcher, notifier`}},
		{"downtime alone", head + "    fault: {kind: siem, downtime: 5s}\n    expect: {rollbackWithin: 10s}\n", []string{`drills.yaml:5: experiment "x": fault.downtime needs fault.kill`}},
		{"long downtime", head + "    fault: {kind: siem, kill: watcher, downtime: 1h}\n    expect: {rollbackWithin: 10s}\n", []string{`drills.yaml:5: experiment "x": fault.downtime 1h0m0s: want more than 0, at most 5m0s`}},
		{"never passes", head + "    fault: {kind: http-errors, ratio: 0.2, kill: deployer, downtime: 10s}\n    expect:\n      rollbackWithin: 10s\n", []string{`drills.yaml:7: experiment "x": expect.rollbackWithin 10s can never pass: the deployer is down for 10s`}},
		{"two problems", "version: 1\nevery: 1s\nexperiments:\n  - name: x\n    target: {app: shop}\n    fault: {kind: siem}\n    expect: {rollbackWithin: 5s}\n  - name: x\n    target: {app: shop}\n    fault: {kind: siem}\n    expect: {rollbackWithin: 5s}\n",
			[]string{"drills.yaml:2: every 1s", `drills.yaml:8: experiment "x": named twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := chaos.Parse("drills.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// The example the README points at stays valid.
func TestExampleFileParses(t *testing.T) {
	f, err := chaos.Load("../../../../docs/examples/chaos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range f.Experiments {
		seen[e.Fault.Kind], seen[e.Fault.Recorded()] = true, true
	}
	for _, k := range chaos.Kinds {
		if !seen[k] {
			t.Errorf("the example has no %s experiment", k)
		}
	}
	for _, k := range chaos.Killable {
		if !seen["kill-"+k] {
			t.Errorf("the example kills no %s", k)
		}
	}
}
