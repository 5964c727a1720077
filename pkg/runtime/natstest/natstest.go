// Package natstest gives each test its own real NATS server with JetStream,
// in a temporary directory, and a poll-with-deadline helper for waiting.
package natstest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/embedded"
)

// Server starts a JetStream server on a random loopback port with its store in
// dir (a new temporary directory when dir is ""); it is shut down when the
// test ends.
func Server(t testing.TB, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ns, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Connect opens a client connection, closed when the test ends.
func Connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), nats.Name(t.Name()))
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
