package tlsgen_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := tlsgen.Ensure(dir, tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	if f.CAExists {
		t.Error("CAExists on first start")
	}
	for _, key := range []string{f.CAKey, f.Key} {
		st, err := os.Stat(key)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", key, err, st.Mode().Perm())
		}
	}
	pool, err := tlsgen.Pool(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range tlsgen.LocalHosts {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}

	// A second start keeps everything; new hosts get a new server
	// certificate from the same CA.
	ca, _ := os.ReadFile(f.CA)
	cert, _ := os.ReadFile(f.Cert)
	if f, err = tlsgen.Ensure(dir, tlsgen.LocalHosts...); err != nil || !f.CAExists {
		t.Fatalf("second start: %v, CAExists %v", err, f.CAExists)
	}
	if ca2, _ := os.ReadFile(f.CA); !bytes.Equal(ca, ca2) {
		t.Error("the CA changed")
	}
	if cert2, _ := os.ReadFile(f.Cert); !bytes.Equal(cert, cert2) {
		t.Error("the server certificate changed although it was good")
	}
	if _, err := tlsgen.Ensure(dir, "rampart.example"); err != nil {
		t.Fatal(err)
	}
	if ca2, _ := os.ReadFile(f.CA); !bytes.Equal(ca, ca2) {
		t.Error("the CA changed with the hosts")
	}
	pair, err = tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "rampart.example"}); err != nil {
		t.Errorf("new host: %v", err)
	}

	// Half a CA is an error, never silently replaced.
	if err := os.Remove(f.CAKey); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsgen.Ensure(dir, tlsgen.LocalHosts...); err == nil {
		t.Error("a CA certificate without its key was accepted")
	}
}
