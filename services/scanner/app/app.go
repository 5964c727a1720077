// Package app is the scanner service as a component: the same in its own
// binary and inside `rampart up`. It serves the registry and Git webhooks,
// scans pushed images with Trivy in-process, publishes signed verdicts, and
// re-scans the stored SBOMs of live releases when the vulnerability DB
// changes.
package app

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/contract"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/feedback"
	"github.com/rampartci/rampart/services/scanner/internal/imagescan"
	"github.com/rampartci/rampart/services/scanner/internal/ingress"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
	"github.com/rampartci/rampart/services/scanner/internal/stagecheck"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
	"github.com/rampartci/rampart/services/scanner/sast"
)

// Consumer is the scanner's durable consumer: pushed artifacts to scan as
// images and commits to scan at source.
var Consumer = imagescan.Consumer

// TargetsConsumer follows promotions, releases and rollbacks, to know what
// a zero-day re-scan must look at.
var TargetsConsumer = imagescan.TargetsConsumer

// StagesConsumer checks candidates the deployer deployed to a
// pre-production stage: DAST and consumer contracts against the running
// candidate, and a signed stage verdict.
var StagesConsumer = stagecheck.Consumer

// Registry is how the scanner reaches one image registry.
type Registry = scan.Registry

// CommitHandler scans commits at source; see Options.Commits.
type CommitHandler = imagescan.CommitHandler

// FixtureDBTime is the UpdatedAt of the fixture DB --fixture-db builds, so
// its version is the same on every start.
var FixtureDBTime = time.Date(2026, 8, 13, 0, 0, 0, 0, time.UTC)

// Options configures the scanner.
type Options struct {
	// PolicyFile is rampart.yaml: which application (and environment) an
	// image belongs to. Empty: verdicts name no application.
	PolicyFile string
	// GatePolicyFile is the gate policy (blocking severities, waivers).
	// Empty: block on Critical and High.
	GatePolicyFile string
	// VerdictKeyFile is the Ed25519 key verdicts are signed with; it is
	// created on first start with its public half in VerdictKeyFile+".pub".
	VerdictKeyFile string
	// CacheDir holds the vulnerability DB (<CacheDir>/db). Trivy's DB is
	// process-global: every scanner in one process must use the same dir.
	CacheDir string
	// FixtureDB builds the shipped fixture DB into CacheDir at start and
	// skips DB downloads: tests, the demo and the embedded default.
	FixtureDB bool
	// RegistriesFile is a YAML file of registry credentials, see
	// LoadRegistries.
	RegistriesFile string
	// Registry webhook credential: a bearer token, a basic-auth pair, or a
	// verbatim Authorization header (Harbor's auth_header).
	RegistryToken    policy.Secret
	RegistryUser     string
	RegistryPassword policy.Secret
	RegistryHeader   policy.Secret
	// GitHubSecret keys X-Hub-Signature-256; GitLabToken is X-Gitlab-Token.
	GitHubSecret policy.Secret
	GitLabToken  policy.Secret
	// AdminToken is the bearer token of POST /scanner/rescan; without one
	// the route is disabled.
	AdminToken policy.Secret
	// DBCheckInterval is how often the DB files are checked for a new
	// version (which triggers the zero-day re-scan).
	DBCheckInterval time.Duration
	// ScanTimeout bounds one image scan, pull included.
	ScanTimeout time.Duration
	// SASTTimeout bounds the Go static analysis of one commit (0: the
	// analyzer's default, 5m); NoSAST turns it off. A first analysis
	// compiles the dependencies' export data and can take longer than the
	// default on a small machine: over the bound the verdict is an error.
	SASTTimeout time.Duration
	NoSAST      bool
	// PullAttempts is how many deliveries an unpullable image is tried
	// before its verdict is "error".
	PullAttempts int
	// MaxPushes caps the artifacts of one registry delivery; a delivery
	// over it is refused whole with 413 (0: ingress.DefaultMaxPushes).
	MaxPushes int
	// Replicas of the scanner's buckets and object stores (0 or 1
	// embedded, 3 in a cluster).
	Replicas int

	// Set by embedding programs instead of the files above.
	Policy     *policy.Store
	VerdictKey ed25519.PrivateKey
	Registries map[string]Registry
	// SARIFToken is the bearer token of POST /hooks/sarif (SARIF from
	// Semgrep, CodeQL, ZAP) and of POST /hooks/zap (ZAP reports about a
	// stage); unset, the hooks answer 503.
	SARIFToken policy.Secret
	// GitHubToken, when set, reports source verdicts back to GitHub as a
	// commit status and, for a blocked pull request, a comment listing the
	// blocking findings. GitHubAPI is the REST API base (default
	// https://api.github.com).
	GitHubToken policy.Secret
	GitHubAPI   string
	// AllowLocalRepos lets commit events name file:// repositories (tests,
	// demos); a webhook's URL must never make the scanner read its own disk.
	AllowLocalRepos bool

	// Commits, when set, replaces the source scanner for commit events. If
	// it also serves routes (service.Router), they are mounted with the
	// scanner's.
	Commits CommitHandler
	// RetryBackoff overrides the consumer's retry delays (tests).
	RetryBackoff []time.Duration

	// secrets records the secret flags given a value instead of a reference.
	secrets service.SecretFlags
}

// DefaultOptions are the scanner's defaults.
func DefaultOptions() Options {
	return Options{DBCheckInterval: time.Minute, ScanTimeout: scan.DefaultTimeout, PullAttempts: 3}
}

// withDefaults fills the options left zero from DefaultOptions, so that a
// program embedding the scanner sets only what it means to change.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.DBCheckInterval <= 0 {
		o.DBCheckInterval = d.DBCheckInterval
	}
	if o.ScanTimeout <= 0 {
		o.ScanTimeout = d.ScanTimeout
	}
	if o.PullAttempts <= 0 {
		o.PullAttempts = d.PullAttempts
	}
	o.SASTTimeout = max(o.SASTTimeout, 0) // the analyzer's default
	return o
}

// BindFlags registers the options as flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.PolicyFile, "policy", o.PolicyFile, "rampart.yaml: the application and environment of each image")
	fs.StringVar(&o.GatePolicyFile, "gate-policy", o.GatePolicyFile, "gate policy: blocking severities and waivers (default: block Critical and High)")
	fs.StringVar(&o.VerdictKeyFile, "verdict-key", o.VerdictKeyFile, "Ed25519 key that signs verdicts (created on first start; public half in <file>.pub)")
	fs.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "directory of the vulnerability DB (<dir>/db)")
	fs.BoolVar(&o.FixtureDB, "fixture-db", o.FixtureDB, "build the shipped fixture DB into --cache-dir and skip DB updates (tests, demo)")
	fs.StringVar(&o.RegistriesFile, "registries", o.RegistriesFile, "YAML file of registry credentials for pulling images")
	o.secrets.Var(fs, &o.RegistryToken, "registry-webhook-token", "bearer token the registry's notifications carry")
	fs.StringVar(&o.RegistryUser, "registry-webhook-user", o.RegistryUser, "basic-auth user the registry's notifications carry")
	o.secrets.Var(fs, &o.RegistryPassword, "registry-webhook-password", "basic-auth password of the registry's notifications")
	o.secrets.Var(fs, &o.RegistryHeader, "registry-webhook-header", "verbatim Authorization header of the registry's notifications (Harbor auth_header)")
	o.secrets.Var(fs, &o.GitHubSecret, "github-webhook-secret", "GitHub webhook secret (X-Hub-Signature-256)")
	o.secrets.Var(fs, &o.GitLabToken, "gitlab-webhook-token", "GitLab webhook secret token (X-Gitlab-Token)")
	o.secrets.Var(fs, &o.SARIFToken, "sarif-token", "bearer token of POST /hooks/sarif")
	o.secrets.Var(fs, &o.GitHubToken, "github-token", "token for commit statuses and pull-request comments")
	fs.StringVar(&o.GitHubAPI, "github-api", o.GitHubAPI, "GitHub REST API base URL (default https://api.github.com)")
	o.secrets.Var(fs, &o.AdminToken, "admin-token", "bearer token of POST /scanner/rescan")
	fs.DurationVar(&o.DBCheckInterval, "db-check-interval", o.DBCheckInterval, "how often the vulnerability DB files are checked for a new version")
	fs.DurationVar(&o.ScanTimeout, "scan-timeout", o.ScanTimeout, "bound on one image scan, pull included")
	fs.DurationVar(&o.SASTTimeout, "sast-timeout", o.SASTTimeout, "bound on the Go static analysis of one commit (0: 5m; over it the verdict is an error)")
	fs.BoolVar(&o.NoSAST, "no-sast", o.NoSAST, "do not run the built-in Go static analysis (gosec) on commits")
	fs.IntVar(&o.PullAttempts, "pull-attempts", o.PullAttempts, "deliveries an unpullable image is tried before its verdict is error")
	fs.IntVar(&o.MaxPushes, "max-pushes-per-delivery", o.MaxPushes, "most artifacts one registry delivery may carry; more is refused whole with 413 (0: 100)")
	fs.IntVar(&o.Replicas, "kv-replicas", o.Replicas, "replicas of the scanner's key-value buckets and object stores (1 embedded, 3 in a cluster)")
}

// App is the scanner component.
type App struct {
	opts       Options
	key        ed25519.PrivateKey
	policy     *policy.Store
	gate       *gate.Policy
	registries map[string]Registry
	admin      string
	hooks      ingress.Config

	db      *vulndb.DB
	scanner *scan.Scanner
	images  *imagescan.Pipeline
	ingress *ingress.Handler
	commits CommitHandler
	stages  *stagecheck.Checker // nil without a policy
	staging *bus.Consumer
	cancel  context.CancelFunc
	done    chan struct{} // closed when the background loops returned
	log     *slog.Logger
}

// New checks the options and loads the key, policies and credentials; the
// work starts in Start.
func New(opts Options) (*App, error) {
	if err := opts.secrets.Err(); err != nil {
		return nil, fmt.Errorf("scanner: %w", err)
	}
	if opts.CacheDir == "" {
		return nil, errors.New("scanner: --cache-dir is required: it holds the vulnerability DB")
	}
	if r := opts.Replicas; r != 0 && r != 1 && r != 3 && r != 5 {
		return nil, fmt.Errorf("scanner: --kv-replicas %d: want 1, 3 or 5", r)
	}
	opts = opts.withDefaults()
	a := &App{opts: opts, key: opts.VerdictKey, policy: opts.Policy, registries: opts.Registries, commits: opts.Commits}
	var err error
	if a.key == nil {
		if opts.VerdictKeyFile == "" {
			return nil, errors.New("scanner: --verdict-key is required: the deployer only trusts signed verdicts")
		}
		if a.key, err = events.LoadOrCreateVerdictKey(opts.VerdictKeyFile); err != nil {
			return nil, fmt.Errorf("scanner: %w", err)
		}
	}
	if a.policy == nil && opts.PolicyFile != "" {
		if a.policy, err = policy.NewStore(opts.PolicyFile); err != nil {
			return nil, fmt.Errorf("scanner: %w", err)
		}
	}
	a.gate = gate.Default()
	if opts.GatePolicyFile != "" {
		if a.gate, err = gate.LoadFile(opts.GatePolicyFile); err != nil {
			return nil, fmt.Errorf("scanner: %w", err)
		}
	}
	if opts.RegistriesFile != "" {
		file, err := LoadRegistries(opts.RegistriesFile)
		if err != nil {
			return nil, fmt.Errorf("scanner: %w", err)
		}
		merged := map[string]Registry{}
		for h, r := range file {
			merged[h] = r
		}
		for h, r := range opts.Registries {
			merged[h] = r
		}
		a.registries = merged
	}
	if !opts.AdminToken.IsZero() {
		if a.admin, err = opts.AdminToken.Resolve(); err != nil {
			return nil, fmt.Errorf("scanner: admin token: %w", err)
		}
	}
	a.hooks = ingress.Config{
		RegistryToken: opts.RegistryToken, RegistryUser: opts.RegistryUser, RegistryPassword: opts.RegistryPassword,
		RegistryHeader: opts.RegistryHeader, GitHubSecret: opts.GitHubSecret, GitLabToken: opts.GitLabToken,
		MaxPushes: opts.MaxPushes,
	}
	if opts.MaxPushes < 0 {
		return nil, fmt.Errorf("scanner: --max-pushes-per-delivery %d must not be negative", opts.MaxPushes)
	}
	// Resolve the webhook secrets now, so a missing one fails at start-up
	// rather than as 401s later.
	for what, s := range map[string]policy.Secret{"registry webhook token": opts.RegistryToken, "registry webhook password": opts.RegistryPassword,
		"registry webhook header": opts.RegistryHeader, "GitHub webhook secret": opts.GitHubSecret, "GitLab webhook token": opts.GitLabToken} {
		if !s.IsZero() {
			if _, err := s.Resolve(); err != nil {
				return nil, fmt.Errorf("scanner: %s: %w", what, err)
			}
		}
	}
	return a, nil
}

// Name implements service.Component.
func (a *App) Name() string { return "scanner" }

// Start opens the vulnerability DB (building the fixture DB first if asked),
// starts the image scans' consumers, the webhook handler, and the DB and
// policy watchers.
func (a *App) Start(ctx context.Context, deps service.Deps) (err error) {
	a.log = deps.Logger
	defer func() {
		if err != nil {
			_ = a.Stop(context.Background())
		}
	}()
	if a.opts.FixtureDB {
		if err := ensureFixtureDB(a.opts.CacheDir, a.log); err != nil {
			return err
		}
	}
	if a.db, err = vulndb.Open(a.opts.CacheDir, a.log); err != nil {
		return fmt.Errorf("open vulnerability DB: %w", err)
	}
	if a.scanner, err = scan.New(a.db, scan.Options{Registries: a.registries, Timeout: a.opts.ScanTimeout}, a.log); err != nil {
		return err
	}
	if a.commits == nil {
		if a.commits, err = a.commitScanner(ctx, deps); err != nil {
			return err
		}
	}
	a.images, err = imagescan.New(deps.Bus, a.scanner, a.db, imagescan.Options{
		Key: a.key, Policy: a.policy, Gate: a.gate, Commits: a.commits, PullAttempts: a.opts.PullAttempts,
		RetryBackoff: a.opts.RetryBackoff, DBDir: vulndb.Dir(a.opts.CacheDir), Registerer: deps.Registerer, Replicas: a.opts.Replicas,
	}, a.log)
	if err != nil {
		return err
	}
	if a.ingress, err = ingress.New(a.hooks, deps.Bus, deps.Registerer, a.log); err != nil {
		return err
	}
	if err := a.images.Start(ctx); err != nil {
		return err
	}
	if err := a.startStages(ctx, deps); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.done = make(chan struct{})
	var wg sync.WaitGroup
	if a.opts.PolicyFile != "" && a.opts.Policy == nil {
		wg.Go(func() { a.policy.Watch(runCtx, 2*time.Second, a.log) })
	}
	wg.Go(func() { a.images.WatchDB(runCtx, a.opts.DBCheckInterval) })
	go func() { wg.Wait(); close(a.done) }()
	a.log.Info("scanner ready", "db_version", a.db.Version().String(), "fixture_db", a.opts.FixtureDB,
		"gate_policy", a.gate.Version, "registries", len(a.registries))
	return nil
}

// Stop drains the consumers (the scan in hand finishes), stops the
// watchers and closes the DB.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	if a.staging != nil {
		errs = append(errs, a.staging.Drain(ctx))
	}
	if a.images != nil {
		errs = append(errs, a.images.Stop(ctx))
	}
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	if a.scanner != nil {
		errs = append(errs, a.scanner.Close())
	}
	if a.db != nil {
		errs = append(errs, a.db.Close())
		a.db = nil
	}
	return errors.Join(errs...)
}

// Ready implements service.ReadyChecker.
func (a *App) Ready(context.Context) error {
	if a.images == nil {
		return errors.New("starting")
	}
	return a.images.Ready()
}

// Routes serves the webhooks and the re-scan trigger:
//
//	POST /hooks/registry   registry push notifications
//	POST /hooks/git        GitHub and GitLab pushes and pull requests
//	POST /scanner/rescan   reload the vulnerability DB and re-scan what is
//	                       live and in flight (bearer --admin-token)
func (a *App) Routes(mux *http.ServeMux) {
	a.ingress.Routes(mux)
	mux.HandleFunc("POST /scanner/rescan", a.serveRescan)
	if r, ok := a.commits.(service.Router); ok {
		r.Routes(mux)
	}
	if a.stages != nil {
		a.stages.Routes(mux)
	}
}

// startStages checks the candidates deployed to the policy's
// pre-production stages, and serves POST /hooks/zap.
func (a *App) startStages(ctx context.Context, deps service.Deps) error {
	if a.policy == nil {
		return nil
	}
	var zap string
	if !a.opts.SARIFToken.IsZero() {
		var err error
		if zap, err = a.opts.SARIFToken.Resolve(); err != nil {
			return fmt.Errorf("scanner: SARIF token: %w", err)
		}
	}
	var err error
	if a.stages, err = stagecheck.New(stagecheck.Options{Key: a.key, Policy: a.policy, Publisher: deps.Bus, Gate: a.gate,
		ZAPToken: zap, Logger: a.log}); err != nil {
		return err
	}
	opts := StagesConsumer
	if len(a.opts.RetryBackoff) > 0 {
		opts.Backoff = a.opts.RetryBackoff
	}
	a.staging, err = deps.Bus.Consume(context.WithoutCancel(ctx), opts, a.stages.Handle)
	return err
}

// commitScanner is the commit scanner: clone, Trivy's secret,
// misconfiguration and lock-file scans, the OpenAPI contract diff, SARIF
// uploads, and feedback to GitHub.
func (a *App) commitScanner(ctx context.Context, deps service.Deps) (*commitscan.Service, error) {
	specs, err := contract.OpenObjectStore(ctx, deps.Bus.JetStream(), a.opts.Replicas)
	if err != nil {
		return nil, err
	}
	sc, err := commitscan.NewScanner(commitscan.ScannerOptions{DB: a.db, Specs: specs, AllowLocal: a.opts.AllowLocalRepos,
		DisableSAST: a.opts.NoSAST, SAST: sast.Options{Timeout: a.opts.SASTTimeout}}, a.log)
	if err != nil {
		return nil, err
	}
	opts := commitscan.Options{Scanner: sc, Specs: specs, Key: a.key, Publisher: deps.Bus, Gate: a.gate,
		SARIFToken: a.opts.SARIFToken, Logger: a.log}
	if !a.opts.GitHubToken.IsZero() {
		opts.GitHub, opts.GitHubToken = &feedback.Options{APIURL: a.opts.GitHubAPI}, a.opts.GitHubToken
	}
	return commitscan.New(opts)
}

// serveRescan is the explicit "vulnerability DB updated" trigger: it
// reloads the DB and re-scans the stored SBOMs of every live and in-flight
// artifact, whether or not the DB version changed, and answers the report.
func (a *App) serveRescan(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if a.admin == "" {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "re-scan trigger disabled: no --admin-token configured"})
		return
	}
	if err := (webhook.Auth{Bearer: a.admin}).Verify(r.Header); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-scanner"`)
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "authentication failed"})
		return
	}
	rep, err := a.images.Refresh(r.Context(), true)
	if err != nil {
		a.log.Error("re-scan", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "report": rep})
		return
	}
	_ = json.NewEncoder(w).Encode(rep)
}

// ensureFixtureDB builds the shipped fixture DB into cacheDir unless that
// exact DB (same UpdatedAt) is already there: rebuilding a DB this process
// has open would make it a new version.
func ensureFixtureDB(cacheDir string, log *slog.Logger) error {
	dir := vulndb.Dir(cacheDir)
	var meta struct{ UpdatedAt time.Time }
	if b, err := os.ReadFile(filepath.Join(dir, "metadata.json")); err == nil && json.Unmarshal(b, &meta) == nil && meta.UpdatedAt.Equal(FixtureDBTime) {
		if _, err := os.Stat(filepath.Join(dir, "trivy.db")); err == nil {
			return nil
		}
	}
	if err := vulndb.Build(cacheDir, FixtureDBTime); err != nil {
		return fmt.Errorf("build fixture DB: %w", err)
	}
	log.Info("fixture vulnerability DB built", "dir", dir)
	return nil
}

var (
	_ service.Component    = (*App)(nil)
	_ service.Router       = (*App)(nil)
	_ service.ReadyChecker = (*App)(nil)
)
