// Package app is the watcher service as a component: the same in its own
// binary and inside `rampart up`. It wires internal/live (what is live,
// rebuilt and followed from the stream), internal/monitor (the analysis
// loop of each live canary), internal/ingress (the Alertmanager and SIEM
// webhooks) and internal/anomaly (publishing what they decide).
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/watcher/internal/ingress"
)

// Consumer is the watcher's durable consumer: canary steps tell it what is
// live; rollbacks and completed releases tell it what no longer is.
var Consumer = bus.ConsumerOptions{
	Durable:        "watcher",
	FilterSubjects: []string{"rampart.canarystep.>", "rampart.rollback.>", "rampart.release.>"},
}

// Options configures the watcher service. Secrets are references
// ("env:NAME" or "file:PATH"), resolved by New; their values never appear in
// flags, logs or errors.
type Options struct {
	// PolicyFile is rampart.yaml; it is reloaded when it changes. Empty:
	// no application has metric analysis, webhooks still work.
	PolicyFile string
	// Policy, when set, is used instead of PolicyFile (rampart up and tests
	// share one store between services).
	Policy *policy.Store
	// PolicyReload is how often PolicyFile is checked for changes.
	PolicyReload time.Duration
	// AlertmanagerToken is the bearer token Alertmanager's http_config
	// sends (authorization.credentials_file or bearer_token_file).
	AlertmanagerToken policy.Secret
	// AlertmanagerUser and AlertmanagerPassword are the basic_auth pair.
	AlertmanagerUser     string
	AlertmanagerPassword policy.Secret
	// SIEMSecret keys the HMAC-SHA256 signature of /hooks/siem.
	SIEMSecret policy.Secret
	// Interval, when set, replaces every application's analysis interval
	// (at least policy.MinInterval).
	Interval time.Duration
	// MaxAlerts caps the alerts of one Alertmanager delivery; a delivery
	// over it is refused whole with 413 (0: ingress.DefaultMaxAlerts).
	MaxAlerts int

	// secrets records the secret flags given a value instead of a reference.
	secrets service.SecretFlags
}

// DefaultOptions are the options of the embedded default: no policy file
// and no webhook credentials (both webhooks refuse every request).
func DefaultOptions() Options { return Options{PolicyReload: 2 * time.Second} }

// BindFlags registers the options as flags; service.ParseFlags also reads
// them from RAMPART_<FLAG> environment variables.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.PolicyFile, "policy", o.PolicyFile, "rampart.yaml: the applications and their analysis rules")
	fs.DurationVar(&o.PolicyReload, "policy-reload", o.PolicyReload, "how often the policy file is checked for changes")
	o.secrets.Var(fs, &o.AlertmanagerToken, "alertmanager-token", "bearer token Alertmanager sends")
	fs.StringVar(&o.AlertmanagerUser, "alertmanager-user", o.AlertmanagerUser, "basic-auth user Alertmanager sends")
	o.secrets.Var(fs, &o.AlertmanagerPassword, "alertmanager-password", "basic-auth password Alertmanager sends")
	o.secrets.Var(fs, &o.SIEMSecret, "siem-secret", "HMAC-SHA256 key of /hooks/siem signatures")
	fs.DurationVar(&o.Interval, "analysis-interval", o.Interval, "replace every application's analysis interval (0: the policy's)")
	fs.IntVar(&o.MaxAlerts, "max-alerts-per-delivery", o.MaxAlerts, "most alerts one Alertmanager delivery may carry; more is refused whole with 413 (0: 100)")
}

// App runs the watcher inside a service host.
type App struct {
	opts   Options
	store  *policy.Store
	cfg    config
	w      atomic.Pointer[watcher]
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks the options, resolves the secrets and loads the policy.
func New(opts Options) (*App, error) {
	if err := opts.secrets.Err(); err != nil {
		return nil, fmt.Errorf("watcher: %w", err)
	}
	if opts.Interval != 0 && opts.Interval < policy.MinInterval {
		return nil, fmt.Errorf("watcher: --analysis-interval %s is below the minimum of %s", opts.Interval, policy.MinInterval)
	}
	if opts.PolicyReload <= 0 {
		opts.PolicyReload = 2 * time.Second
	}
	a := &App{opts: opts, store: opts.Policy}
	if a.store == nil && opts.PolicyFile != "" {
		s, err := policy.NewStore(opts.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("watcher: %w", err)
		}
		a.store = s
	}
	resolve := func(flag string, s policy.Secret) (string, error) {
		if s.IsZero() {
			return "", nil
		}
		v, err := s.Resolve()
		if err != nil {
			return "", fmt.Errorf("watcher: --%s: %w", flag, err)
		}
		return v, nil
	}
	var err error
	if a.cfg.Alertmanager.Bearer, err = resolve("alertmanager-token", opts.AlertmanagerToken); err != nil {
		return nil, err
	}
	if a.cfg.Alertmanager.Password, err = resolve("alertmanager-password", opts.AlertmanagerPassword); err != nil {
		return nil, err
	}
	if (opts.AlertmanagerUser == "") != opts.AlertmanagerPassword.IsZero() {
		return nil, errors.New("watcher: --alertmanager-user and --alertmanager-password go together")
	}
	a.cfg.Alertmanager.Username = opts.AlertmanagerUser
	siem, err := resolve("siem-secret", opts.SIEMSecret)
	if err != nil {
		return nil, err
	}
	a.cfg.SIEMSecret = []byte(siem)
	a.cfg.Interval = opts.Interval
	if opts.MaxAlerts < 0 {
		return nil, fmt.Errorf("watcher: --max-alerts-per-delivery %d must not be negative", opts.MaxAlerts)
	}
	a.cfg.MaxAlerts = opts.MaxAlerts
	a.cfg.Policy = a.store
	return a, nil
}

// Name implements service.Component.
func (a *App) Name() string { return "watcher" }

// Start rebuilds the live canaries from the stream and begins analysing
// them and taking alerts.
func (a *App) Start(ctx context.Context, deps service.Deps) error {
	w, err := startWatcher(ctx, a.cfg, deps)
	if err != nil {
		return err
	}
	a.w.Store(w)
	if a.cfg.Alertmanager.IsZero() {
		deps.Logger.Warn("no Alertmanager credential configured: " + ingress.PathAlertmanager + " refuses every request")
	}
	if len(a.cfg.SIEMSecret) == 0 {
		deps.Logger.Warn("no SIEM secret configured: " + ingress.PathSIEM + " refuses every request")
	}
	if a.store == nil {
		deps.Logger.Warn("no policy: canaries are not analysed by their metrics, only alerts apply")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		if a.opts.Policy == nil && a.store != nil {
			a.store.Watch(runCtx, a.opts.PolicyReload, deps.Logger)
		}
	}()
	return nil
}

// Stop drains the consumer and ends the analyses; the webhooks answer 503
// until the next Start.
func (a *App) Stop(ctx context.Context) error {
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	if w := a.w.Swap(nil); w != nil {
		return w.stop(ctx)
	}
	return nil
}

// Restartable implements service.Restarter: a Start after Stop rebuilds
// the live canaries from the stream and registers its metrics on the new
// registry, and the webhooks follow the watcher in force.
func (a *App) Restartable() {}

var _ service.Restarter = (*App)(nil)

// Routes serves the webhooks, POST /hooks/alertmanager and /hooks/siem.
// The host registers routes after Start; until the watcher runs they answer
// 503, so a sender retries.
func (a *App) Routes(mux *http.ServeMux) {
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := a.w.Load()
		if w == nil {
			http.Error(rw, "watcher is not started", http.StatusServiceUnavailable)
			return
		}
		w.ServeHTTP(rw, r)
	})
	mux.Handle("POST "+ingress.PathAlertmanager, h)
	mux.Handle("POST "+ingress.PathSIEM, h)
}

// Ready implements service.ReadyChecker.
func (a *App) Ready(context.Context) error {
	w := a.w.Load()
	if w == nil {
		return errors.New("not started")
	}
	return w.tracker.Ready()
}
