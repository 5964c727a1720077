// Package mesh assembles the embedded default: a NATS server with JetStream
// (unless an external one is given) and all five services in one process on
// one HTTP listener. `rampart up`, `rampart demo` and the end-to-end tests
// all start it here, so they run the same thing.
package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/embedded"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
	deployer "github.com/rampartci/rampart/services/deployer/app"
	ledger "github.com/rampartci/rampart/services/ledger/app"
	notifier "github.com/rampartci/rampart/services/notifier/app"
	scanner "github.com/rampartci/rampart/services/scanner/app"
	watcher "github.com/rampartci/rampart/services/watcher/app"
)

// Options configures the mesh.
type Options struct {
	// DataDir holds JetStream's store, the ledger's and scanner's keys and
	// the reports; it survives restarts.
	DataDir string
	// NATSListen is the embedded server's address (loopback only).
	NATSListen string
	// NATSURL, when set, is an external NATS server used instead.
	NATSURL string
	// Service configures the host: HTTP address, stream, shutdown; with an
	// external server, its NATSTLS (--nats-ca, --nats-cert, --nats-key).
	Service service.Options
	// HTTPS serves the HTTP listener over TLS with the server certificate
	// the mesh generates (tls.go), unless Service has a key pair of its own.
	HTTPS bool
	// Policy is the applications to deliver; nil delivers none.
	Policy *policy.Store
	// Ledger, Scanner, Deployer, Watcher and Notifier are each service's
	// options; each app.New fills what is unset with its own defaults, and
	// the mesh adds only what ties them together: the policy, the key and
	// credential files in DataDir, the ledger's address.
	Ledger   ledger.Options
	Scanner  scanner.Options
	Deployer deployer.Options
	Watcher  watcher.Options
	Notifier notifier.Options
}

// Mesh is the running embedded default.
type Mesh struct {
	Host     *service.Host
	NATS     *server.Server // nil when connected to an external server
	NATSURL  string
	Deployer *deployer.App
	Watcher  *watcher.App
	Notifier *notifier.App
	Ledger   *ledger.App
	Scanner  *scanner.App
	// ScannerKeyFile is the scanner's verdict-signing key; its public half
	// is ScannerKeyFile + ".pub".
	ScannerKeyFile string
	// NATSKeyDir holds the NATS identities: <name>.nk, the nkey seed of
	// each service and of the admin; server.conf, the authorization block
	// an external server needs to know them (docs/security.md).
	NATSKeyDir string
	// Admin is the identity of the operator commands.
	Admin natsauth.Identity
	// TLSDir holds the generated CA (ca.crt, ca.key) and server certificate
	// (server.crt, server.key): the embedded server requires TLS with them.
	// CAFile is the CA that clients trust, HTTPClient a client trusting it.
	TLSDir, CAFile string
	HTTPClient     *http.Client
	https          bool
}

// NATSKeyDir is where the mesh keeps the NATS identities of data directory dir.
func NATSKeyDir(dir string) string { return filepath.Join(dir, "nats-keys") }

// Start brings the mesh up. On error, whatever had started is stopped.
func Start(ctx context.Context, opts Options, logger *slog.Logger) (_ *Mesh, err error) {
	if opts.DataDir == "" {
		return nil, errors.New("mesh: a data directory is required")
	}
	for _, dir := range []string{"ledger", "scanner", "reports", "watcher", "deployer"} {
		if err := os.MkdirAll(filepath.Join(opts.DataDir, dir), 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	m := &Mesh{ScannerKeyFile: filepath.Join(opts.DataDir, "scanner", "verdict.key")}
	defer func() {
		if err != nil {
			m.Shutdown(context.Background())
		}
	}()

	// Every service and the operator get their own NATS identity, made on
	// first start and kept in the data directory.
	m.NATSKeyDir = NATSKeyDir(opts.DataDir)
	users, err := natsauth.EnsureKeys(m.NATSKeyDir, append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(m.NATSKeyDir, "server.conf"), []byte(natsauth.ServerConfig(users)), 0o600); err != nil {
		return nil, fmt.Errorf("NATS server configuration: %w", err)
	}
	m.Admin = Identity(m.NATSKeyDir, natsauth.Admin)
	// A CA and a server certificate, made on first start: the embedded
	// server requires TLS, and every client in the process trusts the CA.
	if opts.NATSListen == "" {
		opts.NATSListen = embedded.DefaultListen
	}
	certs, err := m.ensureTLS(opts)
	if err != nil {
		return nil, err
	}
	hopts := opts.Service
	m.NATSURL = opts.NATSURL
	if m.NATSURL == "" {
		tlsConf, err := tlsgen.ServerConfig(certs.Cert, certs.Key, "")
		if err != nil {
			return nil, err
		}
		if m.NATS, err = embedded.Start(embedded.Options{Listen: opts.NATSListen, StoreDir: filepath.Join(opts.DataDir, "nats"), Users: users, TLS: tlsConf}); err != nil {
			return nil, err
		}
		m.NATSURL = m.NATS.ClientURL()
		hopts.NATSTLS = service.NATSTLS{CAFile: certs.CA}
	}
	if opts.HTTPS && hopts.TLSCertFile == "" {
		hopts.TLSCertFile, hopts.TLSKeyFile = certs.Cert, certs.Key
	}
	m.https = hopts.TLSCertFile != ""

	pol := opts.Policy
	if pol == nil {
		pol = policy.StoreOf(&policy.Policy{Version: 1})
	}

	lopts := opts.Ledger
	if lopts.KeyFile == "" {
		lopts.KeyFile = ledger.DefaultOptions(filepath.Join(opts.DataDir, "ledger")).KeyFile
	}
	if m.Ledger, err = ledger.New(lopts); err != nil {
		return nil, err
	}
	// The scanner creates its verdict key on first start; the deployer
	// trusts the public half it writes beside it.
	sopts := opts.Scanner
	sopts.Policy, sopts.VerdictKeyFile = pol, m.ScannerKeyFile
	if sopts.CacheDir == "" {
		// No vulnerability DB can be downloaded here: the embedded default
		// scans against the shipped fixture DB unless told otherwise.
		sopts.CacheDir, sopts.FixtureDB = filepath.Join(opts.DataDir, "scanner", "cache"), true
	}
	// Its webhooks and routes refuse requests without credentials; give the
	// embedded default its own, kept in the data directory (`rampart scan
	// sarif` reads sarif.token).
	tokens := map[string]*policy.Secret{"admin.token": &sopts.AdminToken, "sarif.token": &sopts.SARIFToken}
	if sopts.RegistryUser == "" && sopts.RegistryHeader.IsZero() {
		tokens["registry.token"] = &sopts.RegistryToken
	}
	// The Git webhooks too: GitHub's HMAC secret and GitLab's token.
	tokens["github.secret"], tokens["gitlab.token"] = &sopts.GitHubSecret, &sopts.GitLabToken
	for name, tok := range tokens {
		if tok.IsZero() {
			if tok.File, err = secretFile(filepath.Join(opts.DataDir, "scanner", name)); err != nil {
				return nil, err
			}
		}
	}
	if m.Scanner, err = scanner.New(sopts); err != nil {
		return nil, err
	}
	dopts := opts.Deployer
	dopts.Policy, dopts.ScannerKeyFile = pol, m.ScannerKeyFile+".pub"
	if sopts.GatePolicyFile != "" && len(dopts.GatePolicyFiles) == 0 {
		dopts.GatePolicyFiles = []string{sopts.GatePolicyFile} // promote what the scanner judges
	}
	// The operator API refuses requests without a token: one per role
	// (`rampart rollout` reads them).
	// chaos.token is the chaos drills' (`rampart chaos run`): it may only
	// inject bounded faults at the local router (decision 0023) and kill
	// the deployer or the watcher for a while (decision 0029).
	for name, tok := range map[string]*policy.Secret{"operator.token": &dopts.OperatorToken, "viewer.token": &dopts.ViewerToken, "chaos.token": &dopts.ChaosToken} {
		if tok.IsZero() {
			if tok.File, err = secretFile(filepath.Join(opts.DataDir, "deployer", name)); err != nil {
				return nil, err
			}
		}
	}
	if m.Deployer, err = deployer.New(dopts); err != nil {
		return nil, err
	}
	wopts := opts.Watcher
	wopts.Policy = pol
	// Webhooks refuse requests without credentials; give the embedded
	// default its own, kept in the data directory.
	if wopts.AlertmanagerToken.IsZero() && wopts.AlertmanagerUser == "" {
		if wopts.AlertmanagerToken.File, err = secretFile(filepath.Join(opts.DataDir, "watcher", "alertmanager.token")); err != nil {
			return nil, err
		}
	}
	if wopts.SIEMSecret.IsZero() {
		if wopts.SIEMSecret.File, err = secretFile(filepath.Join(opts.DataDir, "watcher", "siem.secret")); err != nil {
			return nil, err
		}
	}
	if m.Watcher, err = watcher.New(wopts); err != nil {
		return nil, err
	}
	nopts := opts.Notifier
	nopts.Policy = pol
	if nopts.LedgerCAFile == "" {
		nopts.LedgerCAFile = certs.CA // the ledger is on this host's listener
	}
	if nopts.ReportDir == "" {
		nopts.ReportDir = filepath.Join(opts.DataDir, "reports")
	}
	if m.Notifier, err = notifier.New(nopts); err != nil {
		return nil, err
	}

	hopts.NATSURL = m.NATSURL
	// One connection per service under its own identity; the admin
	// creates or updates the RAMPART stream first.
	hopts.Identities = map[string]natsauth.Identity{}
	for _, name := range natsauth.Services() {
		hopts.Identities[name] = Identity(m.NATSKeyDir, name)
	}
	hopts.Bootstrap = m.Admin
	// The host's kill route opens to the chaos token.
	if hopts.ChaosToken, err = dopts.ChaosToken.Resolve(); err != nil {
		return nil, fmt.Errorf("chaos token: %w", err)
	}
	m.Host, err = service.Start(ctx, hopts, logger, m.Ledger, m.Scanner, m.Deployer, m.Watcher, m.Notifier)
	if err != nil {
		return nil, err
	}
	// The ledger serves its query API on the host's listener, known now.
	if err := m.Notifier.UseLedger(m.HTTPURL()); err != nil {
		return nil, err
	}
	// The console reads the ledger and the notifier on the same listener.
	if err := m.Deployer.UseServices(m.HTTPURL(), m.HTTPClient, lopts.KeyFile+".pub"); err != nil {
		return nil, err
	}
	return m, nil
}

// Shutdown stops the services in reverse order, then the embedded server.
func (m *Mesh) Shutdown(ctx context.Context) error {
	var err error
	if m.Host != nil {
		err = m.Host.Shutdown(ctx)
	}
	if m.NATS != nil {
		m.NATS.Shutdown()
		m.NATS.WaitForShutdown()
	}
	return err
}

// Identity is the identity name kept in dir: its .creds file when there is
// one (an external server in JWT mode), its nkey seed otherwise.
func Identity(dir, name string) natsauth.Identity {
	id := natsauth.Identity{Name: name}
	if creds := filepath.Join(dir, name+".creds"); fileExists(creds) {
		id.CredsFile = creds
	} else {
		id.NKeyFile = natsauth.KeyFile(dir, name)
	}
	return id
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// secretFile returns path, first writing a random secret there (mode 0600)
// if it does not exist yet.
func secretFile(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return path, nil
}
