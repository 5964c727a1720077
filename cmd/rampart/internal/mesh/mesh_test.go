package mesh_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// An external server configured with the server.conf `rampart up` writes
// runs the mesh: every service connects under its own identity.
func TestExternalServerWithServerConf(t *testing.T) {
	data := t.TempDir()
	keys := mesh.NATSKeyDir(data)
	users, err := natsauth.EnsureKeys(keys, append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	ns := externalServer(t, natsauth.ServerConfig(users))

	svc := service.DefaultOptions("mesh-test")
	svc.HTTPAddr = "127.0.0.1:0"
	m, err := mesh.Start(t.Context(), mesh.Options{DataDir: data, NATSURL: ns.ClientURL(), Service: svc}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	if m.NATS != nil {
		t.Fatal("the mesh embedded a server although given one")
	}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		resp, err := http.Get("http://" + m.Host.HTTPAddr() + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return &notReady{string(body)}
		}
		return nil
	})
	if n := ns.NumClients(); n < len(natsauth.Services()) {
		t.Fatalf("%d clients, want one per service", n)
	}
}

type notReady struct{ body string }

func (e *notReady) Error() string { return "not ready: " + e.body }
