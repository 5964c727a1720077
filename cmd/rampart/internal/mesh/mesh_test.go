package mesh_test

import (
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
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

	m := startMesh(t, mesh.Options{DataDir: data, NATSURL: ns.ClientURL()})
	if m.NATS != nil {
		t.Fatal("the mesh embedded a server although given one")
	}
	waitReady(t, m, 20*time.Second)
	if n := ns.NumClients(); n < len(natsauth.Services()) {
		t.Fatalf("%d clients, want one per service", n)
	}
}
