// Package tlsgen makes the TLS files of the embedded default: a private CA
// and the certificates it signs (the server's, for NATS and HTTPS on this
// host, and client certificates for mutual TLS), kept as PEM files in a
// directory and made only when missing. It also loads them back as
// tls.Configs for servers and clients.
//
// Decision record: docs/decisions/0017-tls.md.
package tlsgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// File names in the directory Ensure fills.
const (
	CAFile         = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// Validity of what Ensure makes. A server or client certificate within
// renewBefore of its end is made again at the next start.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 2 * 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// LocalHosts are the names the embedded default's server certificate is
// valid for: it serves on loopback.
var LocalHosts = []string{"127.0.0.1", "::1", "localhost"}

// Files are the paths of a CA and a certificate it signed.
type Files struct {
	CA       string // the CA certificate: what clients trust
	CAKey    string
	Cert     string
	Key      string
	CAExists bool // the CA was there before Ensure
}

// Ensure makes sure dir holds a CA (ca.crt, ca.key) and a server
// certificate it signed for hosts (server.crt, server.key), creating what
// is missing. A server certificate that does not cover hosts, was not
// signed by the CA or ends within 30 days is made again; the CA is never
// replaced (delete ca.key and ca.crt to rotate it). Keys are mode 0600.
func Ensure(dir string, hosts ...string) (Files, error) {
	f := Files{CA: filepath.Join(dir, CAFile), CAKey: filepath.Join(dir, CAKeyFile),
		Cert: filepath.Join(dir, ServerCertFile), Key: filepath.Join(dir, ServerKeyFile)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("TLS: %w", err)
	}
	ca, caKey, existed, err := ensureCA(f.CA, f.CAKey)
	if err != nil {
		return f, err
	}
	f.CAExists = existed
	if err := ensureLeaf(ca, caKey, f.Cert, f.Key, "rampart server", hosts, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
		return f, fmt.Errorf("TLS server certificate: %w", err)
	}
	return f, nil
}

// EnsureClient makes sure dir holds a client certificate for name signed by
// the CA in dir (<name>.crt, <name>.key), for mutual TLS; the CA must exist.
func EnsureClient(dir, name string) (cert, key string, err error) {
	ca, caKey, err := loadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return "", "", err
	}
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := ensureLeaf(ca, caKey, cert, key, name, nil, x509.ExtKeyUsageClientAuth); err != nil {
		return "", "", fmt.Errorf("TLS client certificate %s: %w", name, err)
	}
	return cert, key, nil
}

func ensureCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, bool, error) {
	_, cerr := os.Stat(certFile)
	_, kerr := os.Stat(keyFile)
	if cerr == nil && kerr == nil {
		ca, key, err := loadCA(certFile, keyFile)
		return ca, key, true, err
	}
	if cerr == nil || kerr == nil {
		return nil, nil, false, fmt.Errorf("TLS CA: %s and %s go together; one is missing (delete both to make a new CA)", certFile, keyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Rampart local CA", Organization: []string{"Rampart"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, false, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, err
	}
	// The key first: a CA certificate without its key is an error above.
	if err := writeKey(keyFile, key); err != nil {
		return nil, nil, false, fmt.Errorf("TLS CA: %w", err)
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, false, fmt.Errorf("TLS CA: %w", err)
	}
	return ca, key, false, nil
}

func loadCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("TLS CA: %s is not an ECDSA key", keyFile)
	}
	if !pair.Leaf.IsCA {
		return nil, nil, fmt.Errorf("TLS CA: %s is not a CA certificate", certFile)
	}
	return pair.Leaf, key, nil
}

// ensureLeaf keeps the certificate in certFile when it is still good (signed
// by ca, covering hosts, not about to end), and otherwise makes a new one.
func ensureLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile, cn string, hosts []string, usage ...x509.ExtKeyUsage) error {
	if pair, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && leafGood(pair.Leaf, ca, hosts) {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Rampart"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func leafGood(leaf, ca *x509.Certificate, hosts []string) bool {
	if leaf.CheckSignatureFrom(ca) != nil || time.Until(leaf.NotAfter) < renewBefore {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// writePEM replaces path with one PEM block, through a temporary file so a
// reader never sees half of it.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	werr := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der})
	if err := errors.Join(werr, tmp.Chmod(mode), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Pool is a certificate pool of the PEM certificates in file.
func Pool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// ServerConfig is the TLS configuration of a server presenting certFile
// and, when clientCA is set, requiring client certificates it signed
// (mutual TLS). clientCA is also the pool the server verifies peers with
// when it dials them (cluster routes).
func ServerConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if clientCA != "" {
		pool, err := Pool(clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.RootCAs, cfg.ClientAuth = pool, pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// HTTPClient is an HTTP client that trusts the system's roots and the CA in
// caFile (none when empty), with timeout.
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Timeout: timeout}, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}
