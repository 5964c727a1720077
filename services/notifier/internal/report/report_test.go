package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/notifier/internal/chaintest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = chaintest.T0.Add(45 * time.Second)

// golden compares got with testdata/name, or rewrites it with -update.
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
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	page, err := events.NewPage(events.Meta{ID: "r-42-page", Source: "/rampart/notifier", Time: now, ChainID: "chain-7", App: "shop", CausedBy: "r-42-rollback"},
		events.Page{App: "shop", Environment: "prod", TicketURI: "https://events.pagerduty.com/v2/enqueue?dedup_key=r-42", DedupKey: "r-42"})
	if err != nil {
		t.Fatal(err)
	}
	// The ledger holds the chain from index 10 on, and a page recorded after
	// the rollback that the report must leave out.
	chain := chaintest.Entries(t, 10, append(rel.Events, page)...)

	tests := []struct {
		name  string
		chain int // how many entries of chain the ledger has recorded
	}{
		{name: "rollback", chain: len(chain)},
		{name: "rollback-ledger-behind", chain: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Build(Input{Rollback: rel.Rollback, Chain: chain[:tt.chain], Now: now})
			if err != nil {
				t.Fatal(err)
			}
			rd, err := Render(r)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".json", rd.JSON)
			golden(t, tt.name+".md", rd.Markdown)
			back, err := Parse(rd.JSON)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := back.JSON(); !bytes.Equal(again, rd.JSON) {
				t.Errorf("JSON does not survive a round trip:\n%s\n%s", again, rd.JSON)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	chain := chaintest.Entries(t, 10, rel.Events...)
	r, err := Build(Input{Rollback: rel.Rollback, Chain: chain, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Ledger.Complete || r.Ledger.RollbackIndex == nil || *r.Ledger.RollbackIndex != 17 {
		t.Errorf("ledger = %+v, want complete with the rollback at entry 17", r.Ledger)
	}
	var kinds []string
	for i, s := range r.Timeline {
		kinds = append(kinds, s.Kind)
		if s.LedgerIndex == nil || *s.LedgerIndex != uint64(10+i) {
			t.Errorf("step %d ledger index = %v, want %d", i, s.LedgerIndex, 10+i)
		}
	}
	want := "commit artifact scan promote canarystep canarystep anomaly rollback"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("timeline kinds = %s, want %s", got, want)
	}
	if r.Versions.From.Digest != chaintest.CanaryDigest || r.Versions.To.Digest != chaintest.StableDigest {
		t.Errorf("versions = %+v", r.Versions)
	}
	if r.Trigger.Observed == nil || *r.Trigger.Observed != 0.0342 || *r.Trigger.Threshold != 0.01 || r.TrafficAtAbort != 25 {
		t.Errorf("trigger = %+v, traffic %d", r.Trigger, r.TrafficAtAbort)
	}
	if len(r.Scans) != 1 || r.Scans[0].Counts["medium"] != 1 || r.Scans[0].Counts["low"] != 3 || r.Scans[0].TopFindings[0].ID != "CVE-2026-1000" {
		t.Errorf("scans = %+v", r.Scans)
	}

	t.Run("no chain id", func(t *testing.T) {
		rb, _ := events.RollbackOf(rel.Rollback)
		ev, err := events.NewRollback(events.Meta{ID: "lonely", Source: "/rampart/test", Time: now, App: "shop"}, rb)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Build(Input{Rollback: ev, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ledger.Complete || len(r.Timeline) != 1 || r.Timeline[0].LedgerIndex != nil || !strings.Contains(r.Ledger.Note, "no chainId") {
			t.Errorf("report = %+v", r)
		}
	})
	t.Run("not a rollback", func(t *testing.T) {
		if _, err := Build(Input{Rollback: rel.Scan, Now: now}); err == nil {
			t.Error("Build accepted a scan event")
		}
	})
}

func TestMarkdownEscapesCells(t *testing.T) {
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	r, err := Build(Input{Rollback: rel.Rollback, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r.Timeline[0].Summary = "a | b\nc"
	md := string(r.Markdown())
	if !strings.Contains(md, `a \| b c`) {
		t.Errorf("cell not escaped:\n%s", md)
	}
}

func TestKeyAndFileName(t *testing.T) {
	tests := []struct{ id, key, file string }{
		{"r-42", "r-42", "r-42"},
		{"shop.prod.2026-11-26T12:00:00Z", "b64.c2hvcC5wcm9kLjIwMjYtMTEtMjZUMTI6MDA6MDBa", "shop.prod.2026-11-26T12_00_00Z"},
		{"../etc/passwd", "b64.Li4vZXRjL3Bhc3N3ZA", "_.._etc_passwd"},
		{"b64.x", "b64.YjY0Lng", "b64.x"},
	}
	for _, tt := range tests {
		if got := Key(tt.id); got != tt.key {
			t.Errorf("Key(%q) = %q, want %q", tt.id, got, tt.key)
		}
		if got := FileName(tt.id); got != tt.file {
			t.Errorf("FileName(%q) = %q, want %q", tt.id, got, tt.file)
		}
	}
}

func TestJSONIsOneObject(t *testing.T) {
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	r, _ := Build(Input{Rollback: rel.Rollback, Chain: chaintest.Entries(t, 0, rel.Events...), Now: now})
	b, _ := r.JSON()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rolloutId", "app", "environment", "versions", "trigger", "trafficAtAbort", "timeline", "scans", "ledger"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report has no %q", k)
		}
	}
}
