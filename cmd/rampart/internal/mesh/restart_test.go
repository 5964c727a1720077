package mesh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// The NATS server is killed with kill -9 under a running mesh and started
// again on the same port and store: the mesh recovers by itself (every
// connection reconnects, /readyz is 503 while the server is away and 200
// again after, the consumers resume) and every event published before and
// after is recorded by the ledger exactly once, in a log that verifies.
func TestMeshSurvivesNATSRestart(t *testing.T) {
	data := t.TempDir()
	keys := mesh.NATSKeyDir(data)
	if _, err := natsauth.EnsureKeys(keys, append(natsauth.Services(), natsauth.Admin)...); err != nil {
		t.Fatal(err)
	}
	srv := startNATS(t, natsSpec{Listen: "127.0.0.1:0", StoreDir: filepath.Join(data, "nats"), KeyDir: keys})
	m := startMesh(t, mesh.Options{DataDir: data, NATSURL: srv.URL})
	waitReady(t, m, 30*time.Second)
	admin := connectAdmin(t, m, srv.URL)
	b, err := bus.New(admin, nil)
	if err != nil {
		t.Fatal(err)
	}

	const perPhase = 200
	publish := func(phase string) {
		t.Helper()
		for i := range perPhase {
			ev := testOutput(t, fmt.Sprintf("%s-%04d", phase, i))
			if _, err := b.Publish(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("before")
	srv.Kill()
	killed := time.Now()
	// Readiness tells the truth while the server is away.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if code, _ := readyz(m); code == http.StatusOK {
			return fmt.Errorf("/readyz 200 with the NATS server killed")
		}
		return nil
	})
	srv.Start()
	restarted := time.Now()
	waitReady(t, m, 30*time.Second)
	t.Logf("NATS killed for %s; the mesh was ready again %s after the restart", restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	// The admin's own connection reconnects too; publishing goes on.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !admin.IsConnected() {
			return fmt.Errorf("admin connection %s", admin.Status())
		}
		return nil
	})
	publish("after")

	// Every durable consumer resumed and has nothing left to do.
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		return consumersDone(t.Context(), js)
	})
	want := map[string]bool{}
	for _, phase := range []string{"before", "after"} {
		for i := range perPhase {
			want[fmt.Sprintf("%s-%04d", phase, i)] = true
		}
	}
	checkLedger(t, m, data, want, 30*time.Second)
}

// startMesh starts the mesh on opts with an HTTP listener on a free
// loopback port; it is shut down when the test ends.
func startMesh(t *testing.T, opts mesh.Options) *mesh.Mesh {
	t.Helper()
	if opts.Service.Name == "" {
		svc := service.DefaultOptions("mesh-test")
		svc.HTTPAddr = "127.0.0.1:0"
		svc.Stream.Replicas = max(opts.Service.Stream.Replicas, 1)
		opts.Service = svc
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("RAMPART_TEST_MESH_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m, err := mesh.Start(t.Context(), opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	return m
}

func readyz(m *mesh.Mesh) (int, string) {
	c := m.HTTPClient // trusts the mesh's CA when it serves HTTPS
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := c.Get(m.HTTPURL() + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitReady waits until the mesh's /readyz answers 200.
func waitReady(t *testing.T, m *mesh.Mesh, timeout time.Duration) {
	t.Helper()
	natstest.CheckFor(t, timeout, 20*time.Millisecond, func() error {
		if code, body := readyz(m); code != http.StatusOK {
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		return nil
	})
}

// connectAdmin connects to urls as the mesh's admin identity, as `rampart
// events publish` does, reconnecting for ever.
func connectAdmin(t *testing.T, m *mesh.Mesh, urls string) *nats.Conn {
	t.Helper()
	auth, err := m.Admin.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(urls, append([]nats.Option{nats.Name(t.Name()), nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond)}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testOutput is an event only the ledger consumes: what is counted is
// recording, not what a service makes of it.
func testOutput(t testing.TB, id string) cloudevents.Event {
	t.Helper()
	ev, err := events.NewTestOutput(events.Meta{ID: id, Source: "/test/mesh"},
		events.TestOutput{Target: "shop", OutputType: "report", Format: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// consumersDone reports a durable consumer on RAMPART with messages left
// to deliver or unacknowledged.
func consumersDone(ctx context.Context, js jetstream.JetStream) error {
	s, err := js.Stream(ctx, bus.StreamName)
	if err != nil {
		return err
	}
	names := s.ConsumerNames(ctx)
	n := 0
	for name := range names.Name() {
		c, err := s.Consumer(ctx, name)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.Config.Durable == "" {
			continue
		}
		n++
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer %s: %d pending, %d unacknowledged", name, info.NumPending, info.NumAckPending)
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	if n < len(natsauth.Services()) {
		return fmt.Errorf("%d durable consumers, want one per service at least", n)
	}
	return nil
}

// checkLedger waits until the ledger has recorded every event id in want
// exactly once (and no other event with those ids' prefixes twice), then
// verifies the whole log as `rampart ledger verify` does, with the
// verifier key from the data directory.
func checkLedger(t *testing.T, m *mesh.Mesh, data string, want map[string]bool, timeout time.Duration) {
	t.Helper()
	c, err := client.New("http://"+m.Host.HTTPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var recorded map[string]int
	start, lastLog := time.Now(), time.Now()
	natstest.CheckFor(t, timeout, 100*time.Millisecond, func() error {
		// Read the whole ledger only once it holds enough entries.
		head, err := c.Entries(t.Context(), 0, 0)
		if err != nil {
			return err
		}
		if head.Size < int64(len(want)) {
			if testing.Verbose() && time.Since(lastLog) > 5*time.Second {
				lastLog = time.Now()
				t.Logf("after %s the ledger holds %d entries", time.Since(start).Round(time.Millisecond), head.Size)
			}
			return fmt.Errorf("the ledger holds %d entries, fewer than the %d events", head.Size, len(want))
		}
		recorded = map[string]int{}
		for from := int64(0); ; {
			page, err := c.Entries(t.Context(), from, -1)
			if err != nil {
				return err
			}
			for _, e := range page.Entries {
				var en entry.Entry
				if err := json.Unmarshal(e.Entry, &en); err != nil {
					return err
				}
				if en.Kind == entry.KindEvent && want[en.EventID] {
					recorded[en.EventID]++
				}
				from = e.Index + 1
			}
			if page.Next == nil {
				break
			}
			from = *page.Next
		}
		if testing.Verbose() && time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			t.Logf("after %s the ledger has recorded %d of %d events", time.Since(start).Round(time.Millisecond), len(recorded), len(want))
		}
		if len(recorded) != len(want) {
			return fmt.Errorf("the ledger recorded %d of %d events", len(recorded), len(want))
		}
		return nil
	})
	for id, n := range recorded {
		if n != 1 {
			t.Errorf("event %s recorded %d times", id, n)
		}
	}
	pub, err := os.ReadFile(filepath.Join(data, "ledger", "ledger.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(string(bytes.TrimSpace(pub)))
	if err != nil {
		t.Fatal(err)
	}
	// Each attempt reads the whole log: poll gently.
	natstest.CheckFor(t, timeout, time.Second, func() error {
		res, err := c.Verify(t.Context(), v)
		if err != nil {
			return err
		}
		if res.Entries < int64(len(want)) || res.Unanchored != 0 {
			return fmt.Errorf("verified %d entries, %d after the last checkpoint", res.Entries, res.Unanchored)
		}
		return nil
	})
}
