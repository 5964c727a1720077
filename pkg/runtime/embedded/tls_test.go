package embedded_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/embedded"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

// tlsServer starts an embedded server that requires TLS with a certificate
// from a CA generated in dir; clientCA, when set, also requires client
// certificates signed by it. It returns the server and the watcher's identity.
func tlsServer(t *testing.T, dir string, clientCA string) (*server.Server, tlsgen.Files, natsauth.Identity) {
	t.Helper()
	files, err := tlsgen.Ensure(filepath.Join(dir, "tls"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsgen.ServerConfig(files.Cert, files.Key, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "nats-keys")
	users, err := natsauth.EnsureKeys(keys, "watcher")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "js"), Users: users, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns, files, natsauth.Identity{Name: "watcher", NKeyFile: natsauth.KeyFile(keys, "watcher")}
}

func connect(t *testing.T, url string, id natsauth.Identity, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	auth, err := id.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(append(opts, nats.Timeout(5*time.Second)), auth...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

func TestTLSClients(t *testing.T) {
	ns, files, id := tlsServer(t, t.TempDir(), "")
	if !strings.HasPrefix(ns.ClientURL(), "tls://") {
		t.Errorf("client URL %s: want tls://", ns.ClientURL())
	}
	addr := strings.TrimPrefix(ns.ClientURL(), "tls://")

	// A plaintext client: the server says TLS is required and never answers
	// a CONNECT in the clear.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q (%v): want tls_required", info, err)
	}
	if _, err := fmt.Fprint(conn, "CONNECT {\"verbose\":false}\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err == nil && strings.HasPrefix(line, "PONG") {
		t.Fatalf("a plaintext client got %q", line)
	}

	// A client that trusts only the system's roots, or another CA, fails
	// to verify the server's certificate.
	if _, err := connect(t, ns.ClientURL(), id); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("no CA: %v, want a certificate verification error", err)
	}
	other, err := tlsgen.Ensure(filepath.Join(t.TempDir(), "other"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, ns.ClientURL(), id, nats.RootCAs(other.CA)); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("wrong CA: %v, want x509: certificate signed by unknown authority", err)
	}

	// The right CA and an nkey the server knows: connected, over TLS, with
	// a nats:// URL as well (the server asks for TLS).
	for _, url := range []string{ns.ClientURL(), "nats://" + addr} {
		nc, err := connect(t, url, id, nats.RootCAs(files.CA))
		if err != nil {
			t.Fatalf("%s with the CA and the watcher's nkey: %v", url, err)
		}
		if state, err := nc.TLSConnectionState(); err != nil || !state.HandshakeComplete {
			t.Errorf("%s: TLS state %v, %v", url, state.HandshakeComplete, err)
		}
	}
	// TLS does not replace the nkey: without one, Authorization Violation.
	if nc, err := nats.Connect(ns.ClientURL(), nats.RootCAs(files.CA)); err == nil || !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Errorf("the CA without an nkey: %v, want an authorization violation", err)
	}
}

func TestMutualTLSClients(t *testing.T) {
	dir := t.TempDir()
	// The CA exists before the server starts, so it can require
	// certificates the CA signed.
	files, err := tlsgen.Ensure(filepath.Join(dir, "tls"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	ns, _, id := tlsServer(t, dir, files.CA)
	cert, key, err := tlsgen.EnsureClient(filepath.Join(dir, "tls"), "watcher")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, ns.ClientURL(), id, nats.RootCAs(files.CA), nats.ClientCert(cert, key)); err != nil {
		t.Fatalf("with a client certificate the CA signed: %v", err)
	}
	if _, err := connect(t, ns.ClientURL(), id, nats.RootCAs(files.CA)); err == nil {
		t.Error("connected without a client certificate")
	}
	otherDir := filepath.Join(dir, "other")
	if _, err := tlsgen.Ensure(otherDir, tlsgen.LocalHosts...); err != nil {
		t.Fatal(err)
	}
	ocert, okey, err := tlsgen.EnsureClient(otherDir, "watcher")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, ns.ClientURL(), id, nats.RootCAs(files.CA), nats.ClientCert(ocert, okey)); err == nil {
		t.Error("connected with a client certificate another CA signed")
	}
}

// logBuffer collects a server's log.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
}
func (l *logBuffer) Noticef(format string, v ...any) { l.logf(format, v...) }
func (l *logBuffer) Warnf(format string, v ...any)   { l.logf(format, v...) }
func (l *logBuffer) Fatalf(format string, v ...any)  { l.logf(format, v...) }
func (l *logBuffer) Errorf(format string, v ...any)  { l.logf(format, v...) }
func (l *logBuffer) Debugf(format string, v ...any)  { l.logf(format, v...) }
func (l *logBuffer) Tracef(format string, v ...any)  { l.logf(format, v...) }

func (l *logBuffer) has(s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return nil
		}
	}
	return fmt.Errorf("no %q in the log:\n%s", s, strings.Join(l.lines, "\n"))
}

func TestClusterRoutesMutualTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsgen.Ensure(filepath.Join(dir, "tls"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	routeTLS, err := tlsgen.ServerConfig(files.Cert, files.Key, files.CA)
	if err != nil {
		t.Fatal(err)
	}
	users, err := natsauth.EnsureKeys(filepath.Join(dir, "nats-keys"), natsauth.Admin)
	if err != nil {
		t.Fatal(err)
	}
	// A JetStream cluster node needs its routes when it starts: each node
	// gets a free port and the list of all of them.
	n1Addr, n2Addr := freeAddr(t), freeAddr(t)
	routes := []string{n1Addr, n2Addr}
	node := func(name, listen string, cfg *tls.Config, log *logBuffer) *server.Server {
		t.Helper()
		opts := embedded.Options{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, name), Name: name, Users: users,
			Cluster: &embedded.Cluster{Name: "rampart", Listen: listen, Routes: routes, TLS: cfg}}
		if log != nil {
			opts.Logger = log
		}
		ns, err := embedded.Start(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		return ns
	}
	log1 := &logBuffer{}
	n1 := node("n1", n1Addr, routeTLS, log1)
	n2 := node("n2", n2Addr, routeTLS, nil)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n1.NumRoutes() == 0 || n2.NumRoutes() == 0 {
			return fmt.Errorf("routes: n1 %d, n2 %d", n1.NumRoutes(), n2.NumRoutes())
		}
		return nil
	})

	// A node that trusts the cluster's CA but presents a certificate another
	// CA signed is refused by n1: it never joins.
	other, err := tlsgen.Ensure(filepath.Join(dir, "other"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	rogueTLS, err := tlsgen.ServerConfig(other.Cert, other.Key, files.CA)
	if err != nil {
		t.Fatal(err)
	}
	rogue := node("rogue", "127.0.0.1:0", rogueTLS, nil)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		return log1.has("unknown authority")
	})
	if n := rogue.NumRoutes(); n != 0 {
		t.Errorf("the rogue node has %d routes, want 0", n)
	}
	routez, err := n1.Routez(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routez.Routes {
		if r.RemoteName == "rogue" {
			t.Errorf("n1 has a route to the rogue node: %+v", r)
		}
	}

	// Route TLS that does not verify the peer is refused at start-up.
	lax := routeTLS.Clone()
	lax.ClientAuth = tls.NoClientCert
	if _, err := embedded.Start(embedded.Options{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "lax"), Users: users,
		Cluster: &embedded.Cluster{Name: "rampart", Listen: "127.0.0.1:0", TLS: lax}}); err == nil || !strings.Contains(err.Error(), "mutual TLS") {
		t.Errorf("route TLS without client verification: %v", err)
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
