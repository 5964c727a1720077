package service_test

import (
	"context"
	"flag"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/embedded"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// A host reaches a server that requires (mutual) TLS with --nats-ca (and
// --nats-cert, --nats-key), and its nkey.
func TestHostOverNATSTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsgen.Ensure(filepath.Join(dir, "tls"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := tlsgen.EnsureClient(filepath.Join(dir, "tls"), "watcher")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsgen.ServerConfig(files.Cert, files.Key, files.CA) // mutual TLS
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "nats-keys")
	users, err := natsauth.EnsureKeys(keys, "watcher", natsauth.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "js"), Users: users, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	start := func(args ...string) (*service.Host, *component, error) {
		t.Helper()
		opts := service.DefaultOptions("test")
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		opts.BindFlags(fs)
		if err := fs.Parse(append([]string{"--nats", ns.ClientURL(), "--http", "127.0.0.1:0", "--nats-nkey", natsauth.KeyFile(keys, "watcher")}, args...)); err != nil {
			t.Fatal(err)
		}
		opts.NATS.Name = "watcher"
		opts.Bootstrap = natsauth.Identity{Name: natsauth.Admin, NKeyFile: natsauth.KeyFile(keys, natsauth.Admin)}
		c := &component{name: "watcher"}
		h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), c)
		if err == nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = h.Shutdown(ctx)
			})
		}
		return h, c, err
	}
	_, c, err := start("--nats-ca", files.CA, "--nats-cert", cert, "--nats-key", key)
	if err != nil {
		t.Fatalf("with the CA, a client certificate and the nkey: %v", err)
	}
	if st, err := c.deps.Bus.Conn().TLSConnectionState(); err != nil || len(st.PeerCertificates) == 0 {
		t.Fatalf("not over TLS: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "certificate"},                         // the system's roots do not know the CA
		{[]string{"--nats-ca", files.CA}, "connect"}, // no client certificate
		{[]string{"--nats-ca", files.CA, "--nats-cert", cert}, "--nats-cert and --nats-key go together"},
		{[]string{"--nats-ca", filepath.Join(dir, "missing.crt")}, "--nats-ca"},
	} {
		if _, _, err := start(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
