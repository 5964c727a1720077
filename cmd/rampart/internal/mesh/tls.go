package mesh

import (
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// TLSDir is where the mesh keeps the CA and the server certificate of data
// directory dir (docs/security.md, TLS).
func TLSDir(dir string) string { return filepath.Join(dir, "tls") }

// ensureTLS makes the CA and the server certificate on first start, for
// loopback and the embedded server's host, and the HTTP client that trusts
// the CA.
func (m *Mesh) ensureTLS(opts Options) (tlsgen.Files, error) {
	hosts := slices.Clone(tlsgen.LocalHosts)
	if host, _, err := net.SplitHostPort(opts.NATSListen); err == nil && host != "" && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	if host, _, err := net.SplitHostPort(opts.Service.HTTPAddr); err == nil && host != "" && !slices.Contains(hosts, host) && !unspecified(host) {
		hosts = append(hosts, host)
	}
	m.TLSDir = TLSDir(opts.DataDir)
	files, err := tlsgen.Ensure(m.TLSDir, hosts...)
	if err != nil {
		return files, err
	}
	m.CAFile = files.CA
	m.HTTPClient, err = tlsgen.HTTPClient(files.CA, 30*time.Second)
	return files, err
}

// HTTPURL is the base URL of the mesh's HTTP listener: https:// when it
// serves TLS.
func (m *Mesh) HTTPURL() string {
	scheme := "http://"
	if m.https {
		scheme = "https://"
	}
	return scheme + m.Host.HTTPAddr()
}

func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
