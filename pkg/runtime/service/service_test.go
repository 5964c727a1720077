package service_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// component remembers the dependencies it was started with.
type component struct {
	name string
	deps service.Deps
}

func (c *component) Name() string                                  { return c.name }
func (c *component) Start(_ context.Context, d service.Deps) error { c.deps = d; return nil }
func (c *component) Stop(context.Context) error                    { return nil }

func TestNoAnonymousHost(t *testing.T) {
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	_, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), &component{name: "watcher"})
	if err == nil || !strings.Contains(err.Error(), "--nats-nkey or --nats-creds is required") {
		t.Fatalf("start without an identity: %v", err)
	}
}

// With an identity per component, each has its own connection as itself,
// the admin creates the stream first, and /readyz checks every connection.
func TestConnectionPerComponent(t *testing.T) {
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.Bootstrap = natstest.Identity(t, ns, natsauth.Admin)
	opts.Identities = map[string]natsauth.Identity{}
	comps := []service.Component{}
	for _, name := range []string{"watcher", "notifier"} {
		opts.Identities[name] = natstest.Identity(t, ns, name)
		comps = append(comps, &component{name: name})
	}
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), comps...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	watcher, notifier := comps[0].(*component).deps.Bus, comps[1].(*component).deps.Bus
	if watcher == notifier || watcher.Conn() == notifier.Conn() {
		t.Fatal("the components share a connection")
	}
	// Each connection is its identity: the watcher may publish an anomaly,
	// the notifier may not.
	if _, err := watcher.JetStream().Publish(t.Context(), "rampart.anomaly.shop", nil); err != nil {
		t.Fatalf("watcher: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := notifier.JetStream().Publish(ctx, "rampart.anomaly.shop", nil); err == nil {
		t.Fatal("the notifier's connection published an anomaly")
	}

	ready := func() (int, string) {
		resp, err := http.Get("http://" + h.HTTPAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	notifier.Conn().Close()
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "nats notifier") || strings.Contains(body, "nats watcher") {
		t.Fatalf("/readyz with the notifier's connection closed: %d %s", code, body)
	}
}
