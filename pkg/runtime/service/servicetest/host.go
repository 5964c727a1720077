// Package servicetest starts components in a real service host for tests.
package servicetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// Host starts comps in a service host on ns, on a loopback port: the
// component connects as identity, the admin bootstraps the streams. The
// host is shut down when the test ends.
func Host(t testing.TB, ns *server.Server, identity string, comps ...service.Component) *service.Host {
	t.Helper()
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.Identities = map[string]natsauth.Identity{identity: natstest.Identity(t, ns, identity)}
	opts.Bootstrap = natstest.Identity(t, ns, natsauth.Admin)
	return Start(t, opts, comps...)
}

// Start starts comps in a service host configured by opts. The host is
// shut down when the test ends.
func Start(t testing.TB, opts service.Options, comps ...service.Component) *service.Host {
	t.Helper()
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), comps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return h
}
