package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
)

// checkComplianceReport checks the compliance report the demo wrote for its
// run: the HTML names the blocked commit, v2's rollback with its trigger and
// page and v3's CVE; the JSON verifies with the ledger key; and changing one
// byte, of a statement or of a ledger entry, makes verify fail naming it.
func checkComplianceReport(t *testing.T, dataDir string) {
	t.Helper()
	dir := filepath.Join(dataDir, ComplianceDir)
	data, err := os.ReadFile(filepath.Join(dir, compliance.FileJSON))
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, compliance.FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	text := html.UnescapeString(string(page))
	pub, err := os.ReadFile(LedgerKeyFile(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := compliance.Verify(data, v)
	if err != nil {
		t.Fatalf("the demo's compliance report does not verify: %v", err)
	}
	r := res.Report
	if !r.Coverage.Complete {
		t.Errorf("coverage: %s", r.Coverage.Note)
	}
	var v2 compliance.Change
	for _, c := range r.Changes {
		if c.Version == "v2" {
			v2 = c
		}
	}
	if v2.Rollback == nil || v2.Page == nil {
		t.Fatalf("v2 in the report: %+v", v2)
	}
	for _, want := range []string{"blocked at source scan", "shop v2", "rolled back", v2.Rollback.Trigger, "On-call paged", v2.Page.Ticket, "shop v3", "blocked at image scan", "CVE-"} {
		if !strings.Contains(text, want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}

	// One byte of a statement: v2's traffic at abort.
	field := []byte(`"trafficAtAbort": ` + itoa(v2.Rollback.TrafficAtAbort))
	changed := bytes.Replace(data, field, []byte(`"trafficAtAbort": `+itoa(v2.Rollback.TrafficAtAbort+1)), 1)
	_, err = compliance.Verify(changed, v)
	if !errors.Is(err, compliance.ErrStatement) || !strings.Contains(err.Error(), ".rollback.trafficAtAbort: the report says") {
		t.Errorf("verify of a changed statement: %v", err)
	}
	// One byte of a ledger entry: the rollback entry's recorded traffic.
	var doc struct{ Entries []compliance.ProvenEntry }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for i, pe := range doc.Entries {
		if pe.Index != v2.Rollback.Index {
			continue
		}
		quoted, _ := json.Marshal(pe.Entry)
		n := bytes.Index(quoted, []byte(`trafficAtAbort`))
		if n < 0 {
			t.Fatal("the rollback entry has no trafficAtAbort")
		}
		tampered := bytes.Clone(quoted)
		tampered[n] = 'T'
		_, err = compliance.Verify(bytes.Replace(data, quoted, tampered, 1), v)
		// The ledger writes entries in bundles, without signatures of their
		// own: the changed entry no longer hashes to its proven leaf.
		want := "entries[" + itoa(i) + "] (ledger entry " + itoa(int(pe.Index)) + "): leafHash "
		if !errors.Is(err, compliance.ErrEntry) || !strings.Contains(err.Error(), want) {
			t.Errorf("verify of a changed ledger entry: %v, want %q", err, want)
		}
		return
	}
	t.Errorf("the report carries no entry %d (v2's rollback)", v2.Rollback.Index)
}

func itoa(n int) string { return strconv.Itoa(n) }
