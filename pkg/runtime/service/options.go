package service

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
)

// Options configures a Host.
type Options struct {
	// Name is the NATS client name.
	Name string
	// NATSURL is the NATS server to connect to.
	NATSURL string
	// NATS is the identity of the host's connection (--nats-nkey or
	// --nats-creds); Rampart's NATS refuses anonymous clients.
	NATS natsauth.Identity
	// NATSTLS is the TLS of every NATS connection (--nats-ca, --nats-cert,
	// --nats-key; natstls.go).
	NATSTLS NATSTLS
	// Identities, when set, give each component (by Name) its own
	// connection under its own identity instead of one shared connection:
	// `rampart up` runs every service under its own permissions.
	Identities map[string]natsauth.Identity
	// Bootstrap, when set, is the identity that creates or updates the
	// RAMPART stream to Stream before the components start (the admin);
	// without it the stream is created when missing and otherwise left as
	// it is, which is all a service identity may do.
	Bootstrap natsauth.Identity
	// HTTPAddr is where /healthz, /readyz, /metrics and the routes are served.
	HTTPAddr string
	// Starting, when set, is told what Start waits for next (the stream, a
	// connection, a component), so a command can say why it is not up yet.
	Starting func(what string)
	// Stream configures the RAMPART stream.
	Stream bus.StreamOptions
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration
	// Listener: HTTPS with this certificate and key (PEM files) when set;
	// a non-loopback HTTPAddr needs them unless InsecureListen (listen.go).
	TLSCertFile, TLSKeyFile string
	InsecureListen          bool
	// ChaosToken, when set, opens the kill route (PathComponents) to its
	// bearer: a chaos drill stops a component of this host and starts it
	// again after a downtime. `rampart up` sets it to the chaos drills'
	// token; a single-service binary has no flag for it (in a cluster a
	// drill deletes the pod instead, decision 0029).
	ChaosToken string
}

// BindFlags registers the options as flags on fs with the given defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NATSURL, "nats", o.NATSURL, "NATS server URL")
	fs.StringVar(&o.NATS.NKeyFile, "nats-nkey", o.NATS.NKeyFile, "file holding this service's NATS nkey seed (SU…)")
	fs.StringVar(&o.NATS.CredsFile, "nats-creds", o.NATS.CredsFile, "this service's NATS .creds file (user JWT and seed), instead of --nats-nkey")
	fs.StringVar(&o.HTTPAddr, "http", o.HTTPAddr, "HTTP listen address for health, metrics and the service's routes")
	fs.DurationVar(&o.Stream.MaxAge, "stream-max-age", o.Stream.MaxAge, "how long the RAMPART stream keeps events (0: forever)")
	fs.IntVar(&o.Stream.Replicas, "stream-replicas", o.Stream.Replicas, "RAMPART stream replicas (1 embedded, 3 in a cluster)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long a graceful shutdown may take")
	o.bindListenFlags(fs)
	o.NATSTLS.BindFlags(fs)
}

// DefaultOptions are the options of a service on the embedded default.
func DefaultOptions(name string) Options {
	return Options{
		Name:            name,
		NATSURL:         "nats://127.0.0.1:4222",
		HTTPAddr:        "127.0.0.1:8080",
		Stream:          bus.StreamOptions{Replicas: 1},
		ShutdownTimeout: 15 * time.Second,
	}
}

// Validate reports the first option that cannot work.
func (o Options) Validate() error {
	u, err := url.Parse(o.NATSURL)
	if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
		return fmt.Errorf("--nats %q: want a URL like nats://host:4222", o.NATSURL)
	}
	if o.NATS.NKeyFile != "" && o.NATS.CredsFile != "" {
		return errors.New("--nats-nkey and --nats-creds: give one identity, not both")
	}
	if err := o.NATSTLS.Check(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		return fmt.Errorf("--http %q: %v", o.HTTPAddr, err)
	}
	if err := o.checkListen(); err != nil {
		return err
	}
	if o.Stream.MaxAge < 0 {
		return errors.New("--stream-max-age must not be negative")
	}
	if r := o.Stream.Replicas; r != 1 && r != 3 && r != 5 {
		return fmt.Errorf("--stream-replicas %d: want 1, 3 or 5", r)
	}
	if o.ShutdownTimeout <= 0 {
		return errors.New("--shutdown-timeout must be positive")
	}
	return nil
}

// checkIdentity reports a host about to connect anonymously. It is not part
// of Validate: `rampart up` validates its flags before it makes the
// identities.
func (o Options) checkIdentity() error {
	if o.NATS.IsZero() && len(o.Identities) == 0 {
		return fmt.Errorf("--nats-nkey or --nats-creds is required (or %s, %s): Rampart's NATS refuses anonymous connections",
			EnvName("nats-nkey"), EnvName("nats-creds"))
	}
	return nil
}

// ParseFlags parses args into fs; a flag not given on the command line takes
// its value from the environment variable RAMPART_<FLAG> (upper case, dashes
// as underscores) when that is set.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := EnvName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, serr)
			}
		}
	})
	return err
}

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return "RAMPART_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}
