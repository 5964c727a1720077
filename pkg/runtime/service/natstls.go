package service

import (
	"errors"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// NATSTLS is how a client's NATS connection does TLS: the CA that signed
// the server's certificate, and for mutual TLS the client's own
// certificate and key (PEM files). Zero: TLS only if the server asks for
// it, verified against the system's roots.
type NATSTLS struct {
	CAFile, CertFile, KeyFile string
}

// IsZero reports whether no TLS file is set.
func (t NATSTLS) IsZero() bool { return t == NATSTLS{} }

// BindFlags registers --nats-ca, --nats-cert and --nats-key on fs.
func (t *NATSTLS) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&t.CAFile, "nats-ca", t.CAFile, "PEM CA `FILE` the NATS server's certificate must be signed by (requires TLS)")
	fs.StringVar(&t.CertFile, "nats-cert", t.CertFile, "PEM client certificate `FILE` for mutual TLS with the NATS server (with --nats-key)")
	fs.StringVar(&t.KeyFile, "nats-key", t.KeyFile, "PEM private key `FILE` of --nats-cert")
}

// Check loads the files, so that a bad one fails at start-up.
func (t NATSTLS) Check() error {
	_, err := t.Options()
	return err
}

// Options are the connection options: with a CA file or a client
// certificate the connection requires TLS (the server must offer it).
func (t NATSTLS) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("--nats-cert and --nats-key go together")
	}
	if t.CAFile != "" {
		if _, err := tlsgen.Pool(t.CAFile); err != nil {
			return nil, fmt.Errorf("--nats-ca: %w", err)
		}
		opts = append(opts, nats.RootCAs(t.CAFile))
	}
	if t.CertFile != "" {
		if _, err := tlsgen.ServerConfig(t.CertFile, t.KeyFile, ""); err != nil {
			return nil, fmt.Errorf("--nats-cert, --nats-key: %w", err)
		}
		opts = append(opts, nats.ClientCert(t.CertFile, t.KeyFile))
	}
	return opts, nil
}
