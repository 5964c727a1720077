package cli

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// defaultCAFile is the CA `rampart up` generates in its default data
// directory: it signed the certificates of its NATS server and HTTPS
// listener.
var defaultCAFile = filepath.Join(mesh.TLSDir(".rampart"), tlsgen.CAFile)

// bindCA binds --ca-file on fs.
func bindCA(fs *flag.FlagSet) *string {
	return fs.String("ca-file", defaultCAFile, "PEM CA `FILE` trusted for the servers' certificates (HTTPS, NATS TLS), besides the system's roots; "+
		"rampart up writes it (\"\" for none)")
}

// caFile is path, or "" when path is the default and `rampart up` has not
// written it: a server with a public certificate needs no CA of ours.
func caFile(path string) string {
	if path == defaultCAFile {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return ""
		}
	}
	return path
}

// httpClient is an HTTP client trusting the CA in path (see caFile).
func httpClient(path string, timeout time.Duration) (*http.Client, error) {
	hc, err := tlsgen.HTTPClient(caFile(path), timeout)
	if err != nil {
		return nil, fmt.Errorf("%w: --ca-file: %v", errUsage, err)
	}
	return hc, nil
}

// natsTrust makes a NATS connection trust the CA in path (see caFile) when
// the server asks for TLS, as `rampart up`'s does; a tls:// URL requires it.
func natsTrust(path string) (nats.Option, error) {
	path = caFile(path)
	if path == "" {
		return func(*nats.Options) error { return nil }, nil
	}
	pool, err := tlsgen.Pool(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --ca-file: %v", errUsage, err)
	}
	return func(o *nats.Options) error {
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.TLSConfig.RootCAs = pool
		return nil
	}, nil
}
