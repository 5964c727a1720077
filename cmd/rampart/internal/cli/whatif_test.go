package cli_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/cmd/rampart/internal/whatif"
	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

// TestReplayWhatIf records a release through the real ledger (a verdict
// with a signed vuln attestation listing one Medium, its promotion and
// release) and asks `rampart replay --policy` what a gate blocking Medium
// would have done, as a table and as JSON.
func TestReplayWhatIf(t *testing.T) {
	m := newMesh(t)
	_, url, _ := startLedger(t, m)
	_, key, _ := ed25519.GenerateKey(nil)
	signer, err := attest.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("7", 64)
	o, err := events.NewOCI("127.0.0.1:5000/shop", digest, "v1")
	if err != nil {
		t.Fatal(err)
	}
	medium := attest.Finding{ID: sampleimage.MediumBusybox, Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: "MEDIUM"}
	vuln, err := signer.Vuln(t.Context(), attest.Subject{Name: "127.0.0.1:5000/shop", Digest: digest},
		attest.Vuln{Scanner: attest.Scanner{Result: attest.Result{Counts: map[string]int{"medium": 1}, Findings: []attest.Finding{medium}}}})
	if err != nil {
		t.Fatal(err)
	}
	meta := func(id string) events.Meta {
		return events.Meta{ID: id, Source: "/test", ChainID: "chain-v1", App: "shop"}
	}
	for _, build := range []func() (cloudevents.Event, error){
		func() (cloudevents.Event, error) {
			return events.NewScanFinished(meta("verdict"), events.Scan{Target: o.String(), TargetKind: "image", Environment: "prod", Outcome: events.OutcomePass,
				Counts: map[string]int{"medium": 1}, Attestations: []json.RawMessage{vuln}})
		},
		func() (cloudevents.Event, error) {
			return events.NewPromoted(meta("promote"), events.Promotion{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: o.String(), Steps: []int{5, 100}})
		},
		func() (cloudevents.Event, error) {
			return events.NewReleaseCompleted(meta("release"), events.Release{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: o.String()})
		},
	} {
		ev, err := build()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.bus.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	waitRecorded(t, m, url, 3)
	strict := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(strict, []byte("block_on: [CRITICAL, HIGH, MEDIUM]\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := rampart(t, context.Background(), "", "replay", "--policy", strict, "--server", url)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"*  v1", "released", "blocked", "1 of 1 releases would have ended differently",
		"why: " + sampleimage.MediumBusybox + " (MEDIUM) in busybox 1.37.0-r18, fixed in 1.37.0-r19", "ledger entries: 0 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}

	r = rampart(t, context.Background(), "", "replay", "--policy", strict, "--server", url, "--json")
	var rep whatif.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("exit %d, JSON %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(rep.Releases) != 1 || rep.Releases[0].WhatIf != whatif.Blocked || rep.Releases[0].Happened != whatif.Released || rep.Events != 3 {
		t.Errorf("report %+v", rep)
	}
}

func TestReplayWhatIfRefusals(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("block_on: [SEVERE]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--policy", bad, "--to", "copy"}, 2, "--to, --dry-run and --subject do not apply"},
		{[]string{"--policy", bad, "--dry-run"}, 2, "--to, --dry-run and --subject do not apply"},
		{[]string{"--since", "1h", "--json"}, 2, "--json is for a what-if (--policy)"},
		{[]string{"--policy", bad}, 1, `block_on[0]: unknown severity "SEVERE"`},
		{[]string{"--policy", filepath.Join(t.TempDir(), "missing.yaml")}, 1, "no such file"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := rampart(t, t.Context(), "", append([]string{"replay", "--server", "http://127.0.0.1:1"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", r.code, tt.code, tt.want, r.stderr)
			}
		})
	}
}
