package mesh_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// An external server that requires mutual TLS (a tls block with verify,
// and the generated server.conf): the mesh's services connect with the CA,
// a client certificate and their nkeys; without the certificate they are
// refused.
func TestExternalServerWithMutualTLS(t *testing.T) {
	data := t.TempDir()
	users, err := natsauth.EnsureKeys(mesh.NATSKeyDir(data), append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := mesh.TLSDir(data)
	files, err := tlsgen.Ensure(tlsDir, tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := tlsgen.EnsureClient(tlsDir, "rampart")
	if err != nil {
		t.Fatal(err)
	}
	ns := externalServer(t, fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }\n%s",
		files.Cert, files.Key, files.CA, natsauth.ServerConfig(users)))

	start := func(tls service.NATSTLS) (*mesh.Mesh, error) {
		svc := service.DefaultOptions("mesh-test")
		svc.HTTPAddr, svc.NATSTLS = "127.0.0.1:0", tls
		m, err := mesh.Start(t.Context(), mesh.Options{DataDir: data, NATSURL: ns.ClientURL(), Service: svc, HTTPS: true}, slog.New(slog.DiscardHandler))
		if err == nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				_ = m.Shutdown(ctx)
			})
		}
		return m, err
	}
	// The server refuses the handshake; the client reads its alert, or, when
	// its first write races the alert, finds the connection closed.
	if _, err := start(service.NATSTLS{CAFile: files.CA}); err == nil ||
		!strings.Contains(err.Error(), "certificate required") && !strings.Contains(err.Error(), "connection closed by remote after TLS handshake") {
		t.Fatalf("without a client certificate: %v, want the TLS handshake refused", err)
	}
	m, err := start(service.NATSTLS{CAFile: files.CA, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.HTTPURL(), "https://") {
		t.Fatalf("HTTP %s: want https", m.HTTPURL())
	}
	waitReady(t, m, 20*time.Second)
	conns, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(conns.Conns) < len(natsauth.Services()) {
		t.Fatalf("%d clients, want one per service", len(conns.Conns))
	}
	for _, c := range conns.Conns {
		if c.TLSVersion == "" {
			t.Errorf("client %s is not on TLS", c.Name)
		}
	}
}

// externalServer runs a nats-server from a configuration file: a loopback
// listener, JetStream, and conf.
func externalServer(t *testing.T, conf string) *server.Server {
	t.Helper()
	file := filepath.Join(t.TempDir(), "nats.conf")
	doc := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q }\n%s", t.TempDir(), conf)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
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
	return ns
}
