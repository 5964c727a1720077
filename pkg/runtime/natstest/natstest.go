// Package natstest gives each test its own real NATS server with JetStream,
// in a temporary directory, and a poll-with-deadline helper for waiting.
package natstest

import (
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/embedded"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
)

// Tester is the identity Connect uses: allowed everything, so that a
// component's tests exercise its logic. Only tests have it; the
// permission table is exercised through ConnectAs.
const Tester = "tester"

// keyDirs maps a running server to the directory of its identities' seeds.
var keyDirs sync.Map

// Server starts a JetStream server on a random loopback port with its store in
// dir (a new temporary directory when dir is ""); it is shut down when the
// test ends. Like the embedded default it refuses anonymous clients: it
// knows every identity of the permission table (natsauth.Grants, Admin) and
// Tester, whose seeds it keeps in dir/nats-keys (so a server restarted on
// the same dir knows the same keys).
func Server(t testing.TB, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	keys := KeyDir(dir)
	users, err := natsauth.EnsureKeys(keys, append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	tester, err := natsauth.EnsureKey(natsauth.KeyFile(keys, Tester))
	if err != nil {
		t.Fatal(err)
	}
	all := natsauth.Rule{Allow: []string{">"}}
	users = append(users, natsauth.User{Name: Tester, PublicKey: tester, Permissions: natsauth.Permissions{Publish: all, Subscribe: all}})
	ns, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir, Name: "test", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	keyDirs.Store(ns, keys)
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		keyDirs.Delete(ns)
	})
	return ns
}

// KeyDir is where Server keeps the seeds of the server whose store is dir.
func KeyDir(dir string) string { return filepath.Join(dir, "nats-keys") }

// Identity is the identity name (a service, natsauth.Admin or Tester) on
// the server ns started by Server.
func Identity(t testing.TB, ns *server.Server, name string) natsauth.Identity {
	t.Helper()
	dir, ok := keyDirs.Load(ns)
	if !ok {
		t.Fatal("natstest: the server was not started by natstest.Server")
	}
	id := natsauth.Identity{Name: name, NKeyFile: natsauth.KeyFile(dir.(string), name)}
	if name == Tester {
		id.Name = "" // the default inbox prefix
	}
	return id
}

// Connect opens a client connection as Tester, closed when the test ends.
func Connect(t testing.TB, ns *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return ConnectAs(t, ns, Tester, opts...)
}

// ConnectAs opens a client connection as the identity name, closed when
// the test ends.
func ConnectAs(t testing.TB, ns *server.Server, name string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	auth, err := Identity(t, ns, name).Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL(), append(append([]nats.Option{nats.Name(t.Name())}, auth...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Bus connects a Bus to ns and ensures the RAMPART stream.
func Bus(t testing.TB, ns *server.Server) *bus.Bus {
	t.Helper()
	b, err := bus.New(Connect(t, ns), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureStream(t.Context(), bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// CheckFor polls f every interval until it returns nil, failing the test with
// f's last error when timeout passes.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// LeakOptions are what goleak must not count as a leak in tests that use
// NATS: nats.go v1.55.0 starts jetstream's resetPendingAcksOnReconnect for
// an asynchronous publish, and when that goroutine starts after its
// connection closed it waits on a nil channel for ever (jetstream/publish.go).
var LeakOptions = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
}
