package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// upClients maps the HTTP URL each `rampart up` printed to a client that
// trusts the CA it printed, so the helpers reach any of them by URL.
var upClients sync.Map

var caLine = regexp.MustCompile(`TLS\s+CA\s+(\S+)`)

// trustPrintedCA registers a client for httpURL trusting the CA `rampart
// up` printed in out.
func trustPrintedCA(t *testing.T, out, httpURL string) {
	t.Helper()
	m := caLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rampart up printed no TLS CA:\n%s", out)
	}
	hc, err := tlsgen.HTTPClient(m[1], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	upClients.Store(httpURL, hc)
	t.Cleanup(func() { upClients.Delete(httpURL); hc.CloseIdleConnections() })
}

// clientFor is the client for a URL under one `rampart up` printed.
func clientFor(url string) *http.Client {
	hc := http.DefaultClient
	upClients.Range(func(k, v any) bool {
		if strings.HasPrefix(url, k.(string)) {
			hc = v.(*http.Client)
			return false
		}
		return true
	})
	return hc
}

// upInBackground runs `rampart up` with args in dir until the test ends.
func upInBackground(t *testing.T, args ...string) (natsURL, httpURL string, out *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out = &syncBuffer{}
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append([]string{"up"}, args...), nil, out, &errOut) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("rampart up: exit %d\n%s", code, errOut.String())
		}
	})
	natsURL, httpURL = addrs(t, out)
	return natsURL, httpURL, out
}

// `rampart up` generates a CA and a server certificate on first start; its
// NATS server requires TLS and its HTTP listener serves HTTPS, both with
// certificates that verify against that CA and no other.
func TestUpTLSByDefault(t *testing.T) {
	data := t.TempDir()
	natsURL, httpURL, out := upInBackground(t, "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	tlsDir := filepath.Join(data, "tls")
	for file, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600} {
		if st, err := os.Stat(filepath.Join(tlsDir, file)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", file, err, mode)
		}
	}
	if !strings.HasPrefix(natsURL, "tls://") || !strings.HasPrefix(httpURL, "https://") {
		t.Fatalf("NATS %s, HTTP %s: want tls:// and https://\n%s", natsURL, httpURL, out.String())
	}
	ca := filepath.Join(tlsDir, "ca.crt")

	// HTTPS: the certificate verifies against the generated CA.
	pool, err := tlsgen.Pool(ca)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(httpURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
	if _, err := resp.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("the HTTPS certificate: %v", err)
	}
	// A client that does not trust the CA is refused; plain HTTP is not
	// served.
	other, err := tlsgen.Ensure(filepath.Join(t.TempDir(), "other"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := tlsgen.HTTPClient(other.CA, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.Get(httpURL + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting another CA: %v, want a certificate error", err)
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(httpURL, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200")
		}
	}

	// NATS: the admin's nkey with the CA connects; without the CA, or with
	// another, the server's certificate does not verify.
	admin, err := natsauth.Identity{Name: natsauth.Admin, NKeyFile: filepath.Join(data, "nats-keys", "admin.nk")}.Options()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts []nats.Option
		want string
	}{
		{nil, "certificate"},
		{[]nats.Option{nats.RootCAs(other.CA)}, "unknown authority"},
		{[]nats.Option{nats.RootCAs(ca)}, ""},
	} {
		nc, err := nats.Connect(natsURL, append(append(tc.opts, nats.Timeout(5*time.Second)), admin...)...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("with the CA: %v", err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d options: %v, want an error with %q", len(tc.opts), err, tc.want)
		}
		if nc != nil {
			nc.Close()
		}
	}

	// The certificates are kept across restarts: nothing to re-trust.
	before, _ := os.ReadFile(ca)
	serverBefore, _ := os.ReadFile(filepath.Join(tlsDir, "server.crt"))
	upInBackground(t, "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	after, _ := os.ReadFile(ca)
	serverAfter, _ := os.ReadFile(filepath.Join(tlsDir, "server.crt"))
	if !bytes.Equal(before, after) || !bytes.Equal(serverBefore, serverAfter) {
		t.Error("a restart replaced the CA or the server certificate")
	}
}

// --plain-http opts out of HTTPS (NATS keeps TLS); the TLS flags of an
// external server make no sense without one.
func TestUpPlainHTTP(t *testing.T) {
	data := t.TempDir()
	natsURL, httpURL, _ := upInBackground(t, "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--plain-http")
	if !strings.HasPrefix(httpURL, "http://") || !strings.HasPrefix(natsURL, "tls://") {
		t.Fatalf("NATS %s, HTTP %s", natsURL, httpURL)
	}
	waitLedger(t, httpURL) // serves
	for _, args := range [][]string{
		{"up", "--nats-ca", "ca.crt", "--data", t.TempDir()},
		{"up", "--plain-http", "--tls-cert", "c", "--tls-key", "k", "--data", t.TempDir()},
	} {
		var out, errOut syncBuffer
		if code := Main(t.Context(), args, nil, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut.String())
		}
	}
}
