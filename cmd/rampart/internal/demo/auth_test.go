package demo

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
)

// natsErrors counts the services' "NATS error" log records (a refused
// subject among them), whatever logger they were derived into.
type natsErrors struct {
	slog.Handler
	n *atomic.Int32
}

func (h natsErrors) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "NATS error" {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h natsErrors) WithAttrs(as []slog.Attr) slog.Handler {
	return natsErrors{h.Handler.WithAttrs(as), h.n}
}

func (h natsErrors) WithGroup(g string) slog.Handler { return natsErrors{h.Handler.WithGroup(g), h.n} }

// D2 of issue 8: an anonymous client on the NATS port of `rampart up`
// published a forged anomaly and rolled a live canary back in 4 ms. Now the
// server refuses the anonymous client, and no identity but the watcher's
// and the scanner's may publish an anomaly: the canary stays where it is.
// Meanwhile the services do their whole job within their own permissions.
func TestForgedAnomalyIsRefused(t *testing.T) {
	refusals := natsErrors{slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}), &atomic.Int32{}}
	e := startEnvLogging(t, time.Hour, 0, refusals)
	a := e.canary(t)
	forged, err := events.NewAnomaly(events.Meta{ID: "forged-" + a.RolloutID, Source: "/rampart/watcher", App: App},
		events.Anomaly{Target: events.TargetCanary, App: App, Environment: "demo", RolloutID: a.RolloutID,
			Rule: "siem", Origin: "siem", Description: "forged", DetectedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(nc *nats.Conn) error {
		b, err := bus.New(nc, nil)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err = b.Publish(ctx, forged)
		return err
	}

	nc, err := nats.Connect(e.Mesh.NATSURL, nats.MaxReconnects(0), nats.RootCAs(e.Mesh.CAFile))
	if err == nil {
		t.Errorf("an anonymous client connected; its forged anomaly: %v", publish(nc))
		nc.Close()
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("anonymous connect: %v, want %v", err, nats.ErrAuthorization)
	}
	for _, name := range []string{"notifier", "deployer", "ledger"} {
		auth, err := natsauth.Identity{Name: name, NKeyFile: natsauth.KeyFile(e.Mesh.NATSKeyDir, name)}.Options()
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(e.Mesh.NATSURL, append(auth, nats.RootCAs(e.Mesh.CAFile), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
		if err != nil {
			t.Fatal(err)
		}
		if err := publish(nc); err == nil {
			t.Errorf("the %s published a forged anomaly", name)
		}
		nc.Close()
	}

	if err := e.waitConsumed(t.Context(), "deployer", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if w, _ := e.Mesh.Deployer.Weight(App); w != 5 {
		t.Errorf("canary weight %d%%, want 5%%: the forged anomaly reached the deployer", w)
	}
	if n := e.rec.count(ofKind(events.KindAnomaly)); n != 0 {
		t.Errorf("%d anomalies stored", n)
	}
	if n := e.rec.count(ofKind(events.KindRollback)); n != 0 {
		t.Errorf("%d rollbacks", n)
	}
	// The services went through a release and a canary without one
	// refusal: their permissions cover their job.
	if n := refusals.n.Load(); n != 0 {
		t.Errorf("%d NATS errors in the services' logs (above)", n)
	}
}
