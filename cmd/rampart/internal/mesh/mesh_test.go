package mesh_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

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
	conf := filepath.Join(t.TempDir(), "nats.conf")
	doc := "listen: 127.0.0.1:-1\njetstream { store_dir: " + `"` + t.TempDir() + `"` + " }\n" + natsauth.ServerConfig(users)
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}

	m := startMesh(t, mesh.Options{DataDir: data, NATSURL: ns.ClientURL()})
	if m.NATS != nil {
		t.Fatal("the mesh embedded a server although given one")
	}
	waitReady(t, m, 20*time.Second)
	if n := ns.NumClients(); n < len(natsauth.Services()) {
		t.Fatalf("%d clients, want one per service", n)
	}
}
