package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCompliance writes the report of a rolled-back release from the
// real ledger in every format, verifies it, and fails verify once a byte
// of a statement is changed, naming the statement.
func TestReportCompliance(t *testing.T) {
	m := newMesh(t)
	keyFile, ledgerURL, _ := startLedger(t, m)
	evs := rolledBack(t, "r-1", "rel-1")
	for _, ev := range evs {
		if _, err := m.bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	waitRecorded(t, m, ledgerURL, int64(len(evs)))
	dir := t.TempDir()
	r := rampart(t, t.Context(), "", "report", "compliance", "--server", ledgerURL, "--key", keyFile+".pub", "--since", "1h", "--out", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "1 changes (0 released, 1 rolled back, 0 blocked), 3 exceptions, 4 ledger entries proven") {
		t.Fatalf("report compliance: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, name := range []string{"compliance-report.json", "compliance-report.html", "compliance-report.md", "compliance-changes.csv"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	report := filepath.Join(dir, "compliance-report.json")
	if r := rampart(t, t.Context(), "", "report", "verify", "--key", keyFile+".pub", report); r.code != 0 || !strings.Contains(r.stdout, "report verified: 4 ledger entries") {
		t.Fatalf("report verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	md := rampart(t, t.Context(), "", "report", "compliance", "--server", ledgerURL, "--key", keyFile+".pub", "--since", "1h", "--app", "shop")
	if md.code != 0 || !strings.Contains(md.stdout, "# Change-control report") || !strings.Contains(md.stdout, "http-5xx-ratio observed 0.05 > threshold 0.01") {
		t.Errorf("--format md: exit %d\n%s%s", md.code, md.stdout, md.stderr)
	}
	// The fixture has no scan and no page: both are exceptions, with the
	// failed canary step.
	for _, want := range []string{"| failed step |", "with no passing image scan in its chain", "rolled back, but no page is recorded"} {
		if !strings.Contains(md.stdout, want) {
			t.Errorf("the report's exceptions lack %q:\n%s", want, md.stdout)
		}
	}

	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(data, []byte(`"trafficAtAbort": 5`), []byte(`"trafficAtAbort": 0`), 1)
	if bytes.Equal(changed, data) {
		t.Fatal("the report has no trafficAtAbort of 5")
	}
	if err := os.WriteFile(report, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	r = rampart(t, t.Context(), "", "report", "verify", "--key", keyFile+".pub", report)
	if r.code != 1 || !strings.Contains(r.stderr, "does NOT verify") || !strings.Contains(r.stderr, "changes[0].rollback.trafficAtAbort: the report says 0; its ledger entries give 5") {
		t.Errorf("verify of a changed report: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, args := range [][]string{
		{"report", "compliance", "--format", "pdf"},
		{"report", "compliance", "--since", "2026-11-02", "--until", "2026-11-01"},
		{"report", "compliance", "--app", ""},
		{"report", "verify"},
	} {
		if r := rampart(t, t.Context(), "", args...); r.code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)\n%s", args, r.code, r.stderr)
		}
	}
}
