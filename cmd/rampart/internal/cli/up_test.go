package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// syncBuffer is a bytes.Buffer safe to write from the command and read from the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	natsLine = regexp.MustCompile(`NATS\s+(nats://\S+)`)
	httpLine = regexp.MustCompile(`HTTP\s+(http://\S+)`)
)

// addrs waits for `rampart up` to print its addresses.
func addrs(t *testing.T, out interface{ String() string }) (natsURL, httpURL string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		n, h := natsLine.FindStringSubmatch(out.String()), httpLine.FindStringSubmatch(out.String())
		if n == nil || h == nil {
			return fmt.Errorf("rampart up has not printed its addresses; output so far:\n%s", out.String())
		}
		natsURL, httpURL = n[1], h[1]
		return nil
	})
	return natsURL, httpURL
}

// adminConn connects to `rampart up` on data as its admin identity.
func adminConn(t *testing.T, natsURL, data string) *nats.Conn {
	t.Helper()
	auth, err := natsauth.Identity{Name: natsauth.Admin, NKeyFile: filepath.Join(data, "nats-keys", "admin.nk")}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, auth...)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func publishCommit(t *testing.T, natsURL, data, id string) {
	t.Helper()
	nc := adminConn(t, natsURL, data)
	defer nc.Close()
	b, err := bus.New(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.NewCommit(events.Meta{ID: id, Source: "/test/up", ChainID: "chain-up", App: "shop"},
		events.Commit{Repository: "github.com/acme/shop", SHA: "sha-" + id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

// waitLedger polls the ledger's HTTP API until it has recorded the events
// with the given ids (the services add events of their own, such as the
// scanner's verdict on a commit).
func waitLedger(t *testing.T, httpURL string, ids ...string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		resp, err := http.Get(httpURL + "/ledger/entries?from=0")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			Entries []struct {
				Entry struct {
					EventID string `json:"eventId"`
				} `json:"entry"`
			} `json:"entries"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			return fmt.Errorf("%s: %s", resp.Status, raw)
		}
		for _, id := range ids {
			found := false
			for _, e := range body.Entries {
				found = found || e.Entry.EventID == id
			}
			if !found {
				return fmt.Errorf("event %s not in the ledger's %d entries", id, len(body.Entries))
			}
		}
		return nil
	})
}

func TestUpServesHealthAndRecordsEvents(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"up", "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, nil, &out, &errOut)
	}()
	natsURL, httpURL := addrs(t, &out)

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			resp, err := http.Get(httpURL + path)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				return fmt.Errorf("%s: %s %s", path, resp.Status, body)
			}
			if path == "/metrics" && !bytes.Contains(body, []byte("rampart_ledger_")) {
				return fmt.Errorf("/metrics has no rampart_ledger_ metrics")
			}
			return nil
		})
	}
	publishCommit(t, natsURL, data, "up-1")
	waitLedger(t, httpURL, "up-1")

	// Every service holds its durable consumer.
	nc := adminConn(t, natsURL, data)
	js, _ := jetstream.New(nc)
	for _, durable := range []string{"ledger", "scanner", "deployer", "watcher", "notifier"} {
		if _, err := js.Consumer(t.Context(), bus.StreamName, durable); err != nil {
			t.Errorf("consumer %s: %v", durable, err)
		}
	}
	nc.Close()

	cancel()
	select {
	case code := <-done:
		if code != 0 || !bytes.Contains([]byte(out.String()), []byte("stopped cleanly")) {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rampart up did not stop within 20s of Ctrl-C")
	}
}

func TestUpRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--nats-listen", "0.0.0.0:4222", "--data", t.TempDir()},
		{"up", "--http", "nonsense", "--nats-listen", "127.0.0.1:0", "--data", t.TempDir()},
		{"up", "--log-level", "loud"},
		{"up", "extra"},
	} {
		var out, errOut syncBuffer
		if code := Main(t.Context(), args, nil, &out, &errOut); code == 0 {
			t.Errorf("%v: exit 0, want failure", args)
		} else if errOut.String() == "" {
			t.Errorf("%v: no error message", args)
		}
	}
}

// The child process of TestUpSurvivesKill9 runs `rampart up` from the test binary.
func TestMain(m *testing.M) {
	if args := os.Getenv("RAMPART_TEST_UP_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(Main(context.Background(), argv, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func startUpProcess(t *testing.T, data string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	argv, _ := json.Marshal([]string{"up", "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RAMPART_TEST_UP_ARGS="+string(argv))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}

func TestUpSurvivesKill9(t *testing.T) {
	data := t.TempDir()
	cmd, out := startUpProcess(t, data)
	natsURL, httpURL := addrs(t, out)
	publishCommit(t, natsURL, data, "before-kill")
	waitLedger(t, httpURL, "before-kill")

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, out2 := startUpProcess(t, data)
	natsURL, httpURL = addrs(t, out2)
	publishCommit(t, natsURL, data, "after-kill")
	waitLedger(t, httpURL, "before-kill", "after-kill")

	c, err := client.New(httpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(data + "/ledger/ledger.key.pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(string(bytes.TrimSpace(pub)))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		res, err := c.Verify(t.Context(), v)
		if err != nil {
			return err
		}
		if res.Entries < 2 || res.Unanchored != 0 {
			return fmt.Errorf("verified %d entries (%d after the last checkpoint)", res.Entries, res.Unanchored)
		}
		return nil
	})
}

// The operator commands connect as the admin identity `rampart up` wrote in
// the data directory, by default .rampart/nats-keys/admin.nk; nothing
// connects without one.
func TestOperatorCommandsAsAdmin(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"up", "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, nil, &out, &errOut)
	}()
	t.Cleanup(func() { cancel(); <-done })
	natsURL, httpURL := addrs(t, &out)

	ev, err := events.NewCommit(events.Meta{ID: "op-1", Source: "/test/op", ChainID: "chain-op", App: "shop"},
		events.Commit{Repository: "github.com/acme/shop", SHA: "sha-op-1"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := events.Structured(ev)
	if err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (int, string) {
		var o, e bytes.Buffer
		code := Main(t.Context(), args, bytes.NewBufferString(stdin), &o, &e)
		return code, o.String() + e.String()
	}
	if code, s := run(string(doc), "events", "publish", "--nats", natsURL, "-"); code != 0 {
		t.Fatalf("events publish: exit %d: %s", code, s)
	}
	waitLedger(t, httpURL, "op-1")
	if code, s := run("", "replay", "--nats", natsURL, "--since", "1h"); code != 0 || !strings.Contains(s, "replayed") {
		t.Fatalf("replay: exit %d: %s", code, s)
	}

	// Another identity than the admin's, or none, is refused.
	if code, s := run(string(doc), "events", "publish", "--nats", natsURL, "--nats-nkey", filepath.Join(".rampart", "nats-keys", "notifier.nk"), "-"); code == 0 || !strings.Contains(s, "Permissions Violation") {
		t.Fatalf("events publish as the notifier: exit 0: %s", s)
	}
	if code, s := run(string(doc), "events", "publish", "--nats", natsURL, "--nats-nkey", filepath.Join(work, "missing.nk"), "-"); code != 1 || !strings.Contains(s, "admin identity") {
		t.Fatalf("events publish without a key: exit %d: %s", code, s)
	}
	stranger := filepath.Join(work, "stranger.nk")
	if _, err := natsauth.EnsureKey(stranger); err != nil {
		t.Fatal(err)
	}
	if code, s := run("", "events", "tail", "--nats", natsURL, "--nats-nkey", stranger); code != 1 || !strings.Contains(s, "refused") {
		t.Fatalf("events tail with an unknown key: exit %d: %s", code, s)
	}
}
