package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	url, stop = startLedgerWith(t, m, opts)
	return opts.KeyFile, url, stop
}

// startLedgerWith runs the real ledger service with opts against m; it
// returns the URL of its HTTP listener and a stop function. A shutdown error
// fails the test unless it contains refused (what a ledger that refused to
// record returns).
func startLedgerWith(t *testing.T, m *mesh, opts ledgerapp.Options, refused ...string) (url string, stop func()) {
	t.Helper()
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
		if err := h.Shutdown(ctx); err != nil && (len(refused) == 0 || !strings.Contains(err.Error(), refused[0])) {
			t.Errorf("stopping the ledger: %v", err)
		}
	}
	t.Cleanup(stop)
	return "http://" + h.HTTPAddr(), stop
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

	if r := rampart(t, t.Context(), "", "ledger", "verify", "--server", ledgerURL, "--key", keyFile+".pub"); r.code != 0 ||
		!regexp.MustCompile(`ledger verified: 4 entries and \d+ checkpoints? checked with key rampart\.ledger\+`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "latest checkpoint: size 4, root ") ||
		!strings.Contains(r.stdout, "every entry pinned by the latest checkpoint's signed root") ||
		r.stderr != "" {
		t.Fatalf("verify: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// --all-signatures checks each entry's own signature too; entries
	// written in bundles have none, and it says so.
	if r := rampart(t, t.Context(), "", "ledger", "verify", "--server", ledgerURL, "--key", keyFile+".pub", "--all-signatures"); r.code != 0 ||
		!strings.Contains(r.stdout, "4 entries written in bundles: they carry no signature of their own, the signed checkpoints vouch for them") {
		t.Fatalf("verify --all-signatures: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The CLI never loads the ledger's private key.
	if r := rampart(t, t.Context(), "", "ledger", "verify", "--server", ledgerURL, "--key", keyFile); r.code != 2 ||
		!strings.Contains(r.stderr, "is the ledger's private signing key; give its verifier key") {
		t.Fatalf("verify with the private key: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
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

	// Another key did not sign this ledger: its entries, written in
	// bundles, carry no signature, so the first checkpoint is what fails.
	otherKey, _ := otherLedgerKey(t)
	r = rampart(t, t.Context(), "", "ledger", "verify", "--server", ledgerURL, "--key", otherKey)
	if r.code != 1 || !strings.Contains(r.stderr, "the ledger does NOT verify: ledger checkpoint 0: checkpoint signature: ") {
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

// TestLedgerVerifyRemembersTheTree: `ledger verify` keeps the last checkpoint
// it verified and catches what an admin with the ledger's NATS streams, but
// not its files, can still do: delete the LEDGER streams and two RAMPART
// events and restart (the ledger refuses, /readyz says why), have the
// operator accept the new log anyway (the tree shrank), let it grow past the
// old size (a fork).
func TestLedgerVerifyRemembersTheTree(t *testing.T) {
	m := newMesh(t)
	opts := ledgerapp.DefaultOptions(t.TempDir())
	opts.CheckpointInterval = 10 * time.Millisecond
	url, stop := startLedgerWith(t, m, opts)
	publishCommits := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			msg, err := events.ToMsg("rampart.commit.shop", commit(t, fmt.Sprintf("%s-%d", prefix, i), "shop", "rel-1"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.js.PublishMsgAsync(msg, jetstream.WithStallWait(10*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-m.js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishes not acknowledged")
		}
	}
	publishCommits("e", 1051)
	waitRecorded(t, m, url, 1051)

	key := opts.KeyFile + ".pub"
	remembered := filepath.Join(filepath.Dir(key), "verified-checkpoint")
	verifyLedger := func() result {
		t.Helper()
		return rampart(t, t.Context(), "", "ledger", "verify", "--server", url, "--key", key)
	}
	if r := verifyLedger(); r.code != 0 || !strings.Contains(r.stdout, "remembered checkpoint size 1051 in "+remembered+"\n") {
		t.Fatalf("first verify: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := verifyLedger(); r.code != 0 || !strings.Contains(r.stdout, "same checkpoint as verified before (size 1051, "+remembered+")") {
		t.Fatalf("second verify: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The admin deletes the ledger's streams and two events, and restarts it.
	stop()
	for _, name := range []string{"LEDGER", "LEDGER_CHECKPOINTS", "LEDGER_CHAINS"} {
		if err := m.js.DeleteStream(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := m.js.Stream(t.Context(), bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{2, 5} {
		if err := rs.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatal(err)
		}
	}
	const refusal = "tree shrank from 1,051 to 0: "
	url, stop = startLedgerWith(t, m, opts, refusal)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), refusal) ||
			!strings.Contains(string(body), "file "+filepath.Join(filepath.Dir(key), "ledger.checkpoint")) {
			return fmt.Errorf("/readyz answered %d %q", resp.StatusCode, body)
		}
		return nil
	})
	if r := verifyLedger(); r.code != 1 || !strings.Contains(r.stderr, "503 Service Unavailable: the ledger is not recording: it stopped: ") ||
		!strings.Contains(r.stderr, refusal) {
		t.Fatalf("verify of a refusing ledger: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	stop()

	// The operator accepts a new log: 1,049 events and the anomaly that
	// reports the new log. To the verifier the tree shrank.
	accept := opts
	accept.AcceptNewLog = true
	url, stop = startLedgerWith(t, m, accept)
	waitRecorded(t, m, url, 1050)
	r := verifyLedger()
	if r.code != 1 || !strings.Contains(r.stderr, "the ledger does NOT verify: tree shrank from 1,051 to 1,050: the ledger's tree head (size 1,050, root ") ||
		!strings.Contains(r.stderr, "is smaller than the one trusted before (size 1,051, root ") ||
		!strings.Contains(r.stderr, "remove "+remembered+" to trust it") {
		t.Fatalf("verify of a shrunk tree: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// More events: the tree is larger again, but a fork.
	publishCommits("f", 5)
	waitRecorded(t, m, url, 1055)
	if r := verifyLedger(); r.code != 1 || !strings.Contains(r.stderr, "the ledger does NOT verify: tree forked at size 1,051: the ledger's tree head (size 1,055, root ") ||
		!strings.Contains(r.stderr, "the consistency proof fails") {
		t.Fatalf("verify of a forked tree: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Trusting the new log is the operator's explicit decision.
	if err := os.Remove(remembered); err != nil {
		t.Fatal(err)
	}
	if r := verifyLedger(); r.code != 0 || !strings.Contains(r.stdout, "remembered checkpoint size 1055") {
		t.Fatalf("verify after removing the file: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	publishCommits("g", 2)
	waitRecorded(t, m, url, 1057)
	if r := verifyLedger(); r.code != 0 || !strings.Contains(r.stdout, "extends the checkpoint verified before (size 1055); remembered size 1057") {
		t.Fatalf("verify of a grown tree: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A file holding another ledger's checkpoint is not silently replaced.
	otherKey, otherVKey := otherLedgerKey(t)
	if r := rampart(t, t.Context(), "", "ledger", "verify", "--server", url, "--key", otherKey, "--verified-checkpoint", remembered); r.code != 1 ||
		!strings.Contains(r.stderr, "--verified-checkpoint: the checkpoint in file "+remembered+" does not verify with key "+otherVKey) {
		t.Fatalf("verify with another ledger's file: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// otherLedgerKey writes the verifier key of a new ledger key, one that
// signed nothing here; it returns the file and the key.
func otherLedgerKey(t *testing.T) (file, vkey string) {
	t.Helper()
	other, _, err := checkpoint.GenerateSigner("rampart.ledger")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "other.pub")
	if err := os.WriteFile(file, []byte(other.VerifierKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, other.VerifierKey()
}
