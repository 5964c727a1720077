package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	ledgerapp "github.com/rampartci/rampart/services/ledger/app"
)

// startLedger runs the real ledger service against m, its key in a temporary
// directory; it returns the key file, the URL of its query API and a stop
// function.
func startLedger(t *testing.T, m *mesh) (keyFile, url string, stop func()) {
	t.Helper()
	opts := ledgerapp.DefaultOptions(t.TempDir())
	opts.CheckpointInterval = 10 * time.Millisecond
	led, err := ledgerapp.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sopts := service.DefaultOptions("ledger-test")
	sopts.NATSURL = m.url
	sopts.NATS = natstest.Identity(t, m.ns, "ledger")
	sopts.HTTPAddr = "127.0.0.1:0"
	h, err := service.Start(t.Context(), sopts, slog.New(slog.DiscardHandler), led)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("stopping the ledger: %v", err)
		}
	}
	t.Cleanup(stop)
	return opts.KeyFile, "http://" + h.HTTPAddr(), stop
}

// waitRecorded waits until the ledger has handled every RAMPART message and
// signed a checkpoint over entries entries.
func waitRecorded(t *testing.T, m *mesh, ledgerURL string, entries int64) {
	t.Helper()
	lc, err := client.New(ledgerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		s, err := m.js.Stream(t.Context(), bus.StreamName)
		if err != nil {
			return err
		}
		si, err := s.Info(t.Context())
		if err != nil {
			return err
		}
		c, err := m.js.Consumer(t.Context(), bus.StreamName, "ledger")
		if err != nil {
			return err
		}
		ci, err := c.Info(t.Context())
		if err != nil {
			return err
		}
		if ci.AckFloor.Stream < si.State.LastSeq {
			return fmt.Errorf("ledger acknowledged up to #%d of #%d", ci.AckFloor.Stream, si.State.LastSeq)
		}
		signed, err := lc.LatestCheckpoint(t.Context())
		if err != nil || signed == nil {
			return fmt.Errorf("no checkpoint yet (%v)", err)
		}
		cp, err := checkpoint.Parse(checkpoint.Text(signed))
		if err != nil {
			return err
		}
		if cp.Size != entries {
			return fmt.Errorf("checkpoint size %d, want %d", cp.Size, entries)
		}
		return nil
	})
}

func TestLedgerVerifyAndShow(t *testing.T) {
	m := newMesh(t)
	keyFile, ledgerURL, stop := startLedger(t, m)

	in := jsonLines(t, commit(t, "e1", "shop", "rel-1"), commit(t, "e2", "shop", "rel-1"), commit(t, "e3", "web", "rel-2"))
	if r := rampart(t, t.Context(), in, "events", "publish", "--nats", m.url, "-"); r.code != 0 {
		t.Fatalf("publish: %s", r.stderr)
	}
	// An event stored without a message id, then replayed onto the live
	// subjects: RAMPART holds it twice, the ledger records it once.
	msg, err := events.ToMsg("rampart.commit.api", commit(t, "x1", "api", "rel-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if r := rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--subject", "rampart.commit.api", "--to", "rampart"); r.code != 0 || !strings.Contains(r.stdout, "replayed 1 event ") {
		t.Fatalf("replay: %s%s", r.stdout, r.stderr)
	}
	if n := m.count(t, bus.StreamName, "rampart.commit.api"); n != 2 {
		t.Fatalf("RAMPART holds %d copies of x1, want 2", n)
	}
	waitRecorded(t, m, ledgerURL, 4)

	for _, key := range []string{keyFile + ".pub", keyFile} {
		r := rampart(t, t.Context(), "", "ledger", "verify", "--server", ledgerURL, "--key", key)
		if r.code != 0 || !regexp.MustCompile(`ledger verified: 4 entries and \d+ checkpoints? checked with key rampart\.ledger\+`).MatchString(r.stdout) ||
			!strings.Contains(r.stdout, "latest checkpoint: size 4, root ") {
			t.Fatalf("verify with %s: exit %d:\n%s%s", filepath.Base(key), r.code, r.stdout, r.stderr)
		}
	}

	r := rampart(t, t.Context(), "", "ledger", "show", "--server", ledgerURL, "--chain", "rel-1")
	if r.code != 0 {
		t.Fatalf("show: exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	rows := regexp.MustCompile(`^(\d+)\s+\S+Z\s+change\.merged\s+(\S+)\s+(\S+)$`)
	var got []string
	for _, l := range lines[1 : len(lines)-1] {
		mm := rows.FindStringSubmatch(l)
		if mm == nil {
			t.Fatalf("row %q in:\n%s", l, r.stdout)
		}
		got = append(got, strings.Join(mm[1:], " "))
	}
	want := "[0 e1 rampart.commit.shop 1 e2 rampart.commit.shop 3 x1 rampart.commit.api]"
	if !strings.HasPrefix(lines[0], "INDEX") || fmt.Sprint(got) != want || lines[len(lines)-1] != "3 entries" {
		t.Fatalf("show printed %v, want %s:\n%s", got, want, r.stdout)
	}
	if r := rampart(t, t.Context(), "", "ledger", "show", "--server", ledgerURL, "--chain", "rel-9"); r.code != 1 || !strings.Contains(r.stderr, `no ledger entry has chainId "rel-9"`) {
		t.Fatalf("show of an unknown chain: exit %d: %s", r.code, r.stderr)
	}

	// Another key did not sign this ledger.
	other, _, err := checkpoint.GenerateSigner("rampart.ledger")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(t.TempDir(), "other.pub")
	if err := os.WriteFile(otherKey, []byte(other.VerifierKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = rampart(t, t.Context(), "", "ledger", "verify", "--server", ledgerURL, "--key", otherKey)
	if r.code != 1 || !strings.Contains(r.stderr, "the ledger does NOT verify: ledger entry 0: ") {
		t.Fatalf("verify with another key: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A ledger that serves a forged entry: a copy of the last entry moved
	// to the next index, with the last entry's signature. (The ledger
	// service itself refuses to run on top of one; this is what verify
	// must catch from anything that answers in its place.)
	c, err := client.New(ledgerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.Entries(t.Context(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := c.Checkpoints(t.Context(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	last := page.Entries[len(page.Entries)-1]
	e, err := entry.Unmarshal(last.Entry)
	if err != nil {
		t.Fatal(err)
	}
	e.Index++
	forged, err := entry.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	page.Entries = append(page.Entries, client.Entry{Index: int64(e.Index), Entry: forged, Signature: last.Signature})
	page.Size++
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ledger/entries":
			_ = json.NewEncoder(w).Encode(page)
		case "/ledger/checkpoints":
			_ = json.NewEncoder(w).Encode(cps)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(fake.Close)
	r = rampart(t, t.Context(), "", "ledger", "verify", "--server", fake.URL, "--key", keyFile+".pub")
	if r.code != 1 || !strings.Contains(r.stdout, "checked 5 entries") ||
		!strings.Contains(r.stderr, "the ledger does NOT verify: ledger entry 4: ") {
		t.Fatalf("verify of a forged entry: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestLedgerVerifyFailures(t *testing.T) {
	// A port nothing listens on: the listener is closed at once.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	signer, _, err := checkpoint.GenerateSigner("rampart.ledger")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "ledger.key.pub")
	if err := os.WriteFile(key, []byte(signer.VerifierKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pub")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no ledger", []string{"--key", key}, "reading the ledger: GET /ledger/checkpoints: "},
		{"not a URL", []string{"--key", key, "--server", "ledger:8080"}, "--server: ledger URL"},
		{"missing key file", []string{"--key", filepath.Join(dir, "absent.pub")}, "reading the ledger's verifier key (--key): open "},
		{"not a key", []string{"--key", garbage}, "--key " + garbage + ": parsing ledger verifier key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rampart(t, t.Context(), "", append([]string{"ledger", "verify", "--server", down.URL}, tt.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, want 1 with %q:\n%s", r.code, tt.want, r.stderr)
			}
		})
	}
}
