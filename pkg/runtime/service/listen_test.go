package service_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// selfSigned writes a certificate for 127.0.0.1 and its key; it returns
// their paths and the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "http.crt"), filepath.Join(dir, "http.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// D6: --http 0.0.0.0:X was accepted silently. A non-loopback listener
// needs TLS, or --insecure-listen.
func TestListenerRule(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	for _, tc := range []struct {
		addr       string
		cert, key  string
		insecure   bool
		want       string // "" for accepted
		isInsecure bool
	}{
		{addr: "127.0.0.1:8080"},
		{addr: "[::1]:8080"},
		{addr: "localhost:8080"},
		{addr: "0.0.0.0:8080", want: "--http 0.0.0.0:8080: a non-loopback HTTP listener needs TLS", isInsecure: true},
		{addr: ":8080", want: "--insecure-listen", isInsecure: true},
		{addr: "10.1.2.3:8080", want: "--tls-cert and --tls-key", isInsecure: true},
		{addr: "rampart.example.com:8080", want: "needs TLS", isInsecure: true},
		{addr: "0.0.0.0:8080", insecure: true},
		{addr: "0.0.0.0:8443", cert: certFile, key: keyFile},
		{addr: "127.0.0.1:8443", cert: certFile, want: "--tls-cert and --tls-key go together"},
		{addr: "0.0.0.0:8443", cert: keyFile, key: keyFile, want: "--tls-cert, --tls-key:"},
	} {
		o := service.DefaultOptions("test")
		o.HTTPAddr, o.TLSCertFile, o.TLSKeyFile, o.InsecureListen = tc.addr, tc.cert, tc.key, tc.insecure
		err := o.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.addr, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.addr, err, tc.want)
		case errors.Is(err, service.ErrInsecureListen) != tc.isInsecure:
			t.Errorf("%s: %v: ErrInsecureListen %v, want %v", tc.addr, err, !tc.isInsecure, tc.isInsecure)
		}
	}
}

// With a key pair the host serves HTTPS, and nothing in the clear.
func TestHostServesTLS(t *testing.T) {
	certFile, keyFile, cert := selfSigned(t)
	o := service.DefaultOptions("test")
	ns := natstest.Server(t, "")
	o.NATSURL, o.HTTPAddr, o.TLSCertFile, o.TLSKeyFile = ns.ClientURL(), "127.0.0.1:0", certFile, keyFile
	o.NATS = natstest.Identity(t, ns, natstest.Tester)
	h, err := service.Start(t.Context(), o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(t.Context()) })
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + h.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /healthz over TLS: %s", resp.Status)
	}
	plain := &http.Client{Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	if resp, err := plain.Get("http://" + h.HTTPAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}
}
