// Package app is the notifier service as a component: the same in its own
// binary and inside `rampart up`.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
	"github.com/rampartci/rampart/services/notifier/internal/dispatch"
	"github.com/rampartci/rampart/services/notifier/internal/incident"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// Consumer is the notifier's durable consumer: rollbacks page on-call,
// anomalies are a chat heads-up, blocked scans and completed releases go to
// chat. A rollback pages at once; its report waits for the ledger, so its
// deliveries are few and far apart; on the last one the report is built
// without the ledger.
var Consumer = bus.ConsumerOptions{
	Durable:        "notifier",
	FilterSubjects: []string{"rampart.rollback.>", "rampart.anomaly.>", "rampart.scan.>", "rampart.release.>", "rampart.drill.>"},
	MaxDeliver:     5,
	AckWait:        30 * time.Second,
}

// Options configures the notifier.
type Options struct {
	// PolicyFile is rampart.yaml, where the apps' notification routes are;
	// empty means no routes (rollbacks are reported, nobody is notified).
	PolicyFile string
	// PolicyReload is how often the policy file is checked for changes.
	PolicyReload time.Duration
	// ReportDir, when set, also receives each report as <rollout>.md and
	// <rollout>.json.
	ReportDir string
	// LedgerURL is the base URL of the ledger's query API (the ledger
	// host's HTTP address), where rollback reports read the release's chain.
	LedgerURL string
	// LedgerCAFile, when set, is a PEM CA the ledger's HTTPS certificate
	// may be signed by, besides the system's roots (`rampart up`'s CA).
	LedgerCAFile string
	// LedgerWait is how long one delivery of a rollback, once paged, waits
	// for the ledger to record it before the message is retried later.
	LedgerWait time.Duration
	// IncidentLease is how long a notifier instance's claim on an incident
	// holds before another may presume it crashed and take over.
	IncidentLease time.Duration
	// Replicas of the notifier's key-value buckets (1 embedded, 3 in a
	// cluster).
	Replicas int
	// RetryAttempts bounds the in-place attempts of one delivery to
	// PagerDuty or Slack; RetryInitial is the first wait, doubling.
	RetryAttempts int
	RetryInitial  time.Duration

	// Policy, when set, is used instead of PolicyFile (tests, the demo).
	Policy *policy.Store
	// HTTPClient, when set, carries PagerDuty and Slack requests.
	HTTPClient *http.Client
	// Now, when set, is the clock of reports and incidents.
	Now func() time.Time
	// Consumer, when set, replaces the consumer's delivery settings
	// (MaxDeliver, AckWait, Backoff); its durable and subjects stay.
	Consumer *bus.ConsumerOptions
}

// DefaultLedgerURL is the ledger's query API on the default HTTP address of
// a service host.
const DefaultLedgerURL = "http://127.0.0.1:8080"

// DefaultOptions writes no report files and reads no policy.
func DefaultOptions() Options {
	return Options{
		PolicyReload:  2 * time.Second,
		LedgerURL:     DefaultLedgerURL,
		LedgerWait:    10 * time.Second,
		IncidentLease: 2 * time.Minute,
		Replicas:      1,
		RetryAttempts: notify.DefaultBackoff().Attempts,
		RetryInitial:  notify.DefaultBackoff().Initial,
	}
}

// BindFlags registers the options as flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.PolicyFile, "policy", o.PolicyFile, "policy file (rampart.yaml) with the apps' notification routes")
	fs.DurationVar(&o.PolicyReload, "policy-reload", o.PolicyReload, "how often the policy file is checked for changes")
	fs.StringVar(&o.ReportDir, "report-dir", o.ReportDir, "directory that also receives each rollback report as <rollout>.md and <rollout>.json")
	fs.StringVar(&o.LedgerURL, "ledger-url", o.LedgerURL, "base URL of the ledger's query API (the ledger's HTTP address)")
	fs.StringVar(&o.LedgerCAFile, "ledger-ca", o.LedgerCAFile, "PEM CA `FILE` trusted for an https --ledger-url, besides the system's roots")
	fs.DurationVar(&o.LedgerWait, "ledger-wait", o.LedgerWait, "how long a rollback waits for the ledger to record it before it is retried")
	fs.DurationVar(&o.IncidentLease, "incident-lease", o.IncidentLease, "how long an instance's claim on an incident holds before another may take over")
	fs.IntVar(&o.Replicas, "kv-replicas", o.Replicas, "replicas of the notifier's key-value buckets (1 embedded, 3 in a cluster)")
	fs.IntVar(&o.RetryAttempts, "retry-attempts", o.RetryAttempts, "attempts of one delivery to PagerDuty or Slack before the message is retried later")
	fs.DurationVar(&o.RetryInitial, "retry-initial", o.RetryInitial, "first wait between delivery attempts; it doubles")
}

// withDefaults fills the options left zero from DefaultOptions, so that a
// caller sets only what it cares about.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.PolicyReload == 0 {
		o.PolicyReload = d.PolicyReload
	}
	if o.LedgerURL == "" {
		o.LedgerURL = d.LedgerURL
	}
	if o.LedgerWait == 0 {
		o.LedgerWait = d.LedgerWait
	}
	if o.IncidentLease == 0 {
		o.IncidentLease = d.IncidentLease
	}
	if o.Replicas == 0 {
		o.Replicas = d.Replicas
	}
	if o.RetryAttempts == 0 {
		o.RetryAttempts = d.RetryAttempts
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = d.RetryInitial
	}
	return o
}

// Validate reports the first option that cannot work; zero values stand
// for their defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	if _, err := client.New(o.LedgerURL, nil); err != nil {
		return fmt.Errorf("notifier: --ledger-url: %w", err)
	}
	switch {
	case o.LedgerWait < 0:
		return errors.New("notifier: --ledger-wait must be positive")
	case o.IncidentLease <= o.LedgerWait:
		return fmt.Errorf("notifier: --incident-lease %s must be longer than --ledger-wait %s", o.IncidentLease, o.LedgerWait)
	case o.Replicas != 1 && o.Replicas != 3 && o.Replicas != 5:
		return fmt.Errorf("notifier: --kv-replicas %d: want 1, 3 or 5", o.Replicas)
	case o.RetryAttempts < 1:
		return errors.New("notifier: --retry-attempts must be at least 1")
	case o.RetryInitial < 0:
		return errors.New("notifier: --retry-initial must be positive")
	case o.PolicyReload < 0:
		return errors.New("notifier: --policy-reload must be positive")
	}
	return nil
}

// App runs the notifier inside a service host.
type App struct {
	opts Options
	// holder names this instance in incident claims; a restart keeps it,
	// so that the incidents it was handling are still its own.
	holder   string
	ledger   ledgerChains
	reports  atomic.Pointer[report.Store]
	bus      *bus.Bus
	consumer *bus.Consumer
	cancel   context.CancelFunc
	watching chan struct{} // closed when the policy watcher returns
}

// New returns the notifier configured by opts, whose zero fields take their
// defaults. The policy is loaded at Start, so that an invalid policy fails
// the start with its problems.
func New(opts Options) (*App, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	holder, err := holderName()
	if err != nil {
		return nil, err
	}
	a := &App{opts: opts.withDefaults(), holder: holder}
	if err := a.UseLedger(a.opts.LedgerURL); err != nil {
		return nil, err
	}
	return a, nil
}

// UseLedger points the notifier at the ledger's query API at url, replacing
// Options.LedgerURL: `rampart up` learns its own HTTP address, where its
// ledger serves, only once its host listens.
func (a *App) UseLedger(url string) error {
	hc, err := tlsgen.HTTPClient(a.opts.LedgerCAFile, ledgerTimeout)
	if err != nil {
		return fmt.Errorf("notifier: --ledger-ca: %w", err)
	}
	c, err := client.New(url, hc)
	if err != nil {
		return fmt.Errorf("notifier: ledger: %w", err)
	}
	a.ledger.client.Store(c)
	return nil
}

// ledgerTimeout bounds one request to the ledger; a slow ledger delays
// reports, never pages.
const ledgerTimeout = 5 * time.Second

// ledgerChains reads chains through the ledger client UseLedger set last.
type ledgerChains struct{ client atomic.Pointer[client.Client] }

func (l *ledgerChains) Chain(ctx context.Context, chainID string) ([]*entry.Entry, error) {
	return l.client.Load().Chain(ctx, chainID)
}

// Name implements service.Component.
func (a *App) Name() string { return "notifier" }

// Start opens the notifier's buckets, loads the policy and starts consuming.
func (a *App) Start(ctx context.Context, deps service.Deps) error {
	a.bus = deps.Bus
	log := deps.Logger
	reports, err := deps.Bus.EnsureKV(ctx, report.KVConfig(a.opts.Replicas))
	if err != nil {
		return err
	}
	incidents, err := deps.Bus.EnsureKV(ctx, incident.KVConfig(a.opts.Replicas))
	if err != nil {
		return err
	}
	if a.opts.ReportDir != "" {
		if err := os.MkdirAll(a.opts.ReportDir, 0o755); err != nil {
			return fmt.Errorf("notifier: report directory: %w", err)
		}
	}
	store := a.opts.Policy
	if store == nil && a.opts.PolicyFile != "" {
		if store, err = policy.NewStore(a.opts.PolicyFile); err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
		log.Info("policy loaded", "file", a.opts.PolicyFile, "digest", store.Current().Digest, "apps", len(store.Current().Apps))
	}
	if store == nil {
		log.Warn("no policy: rollbacks are reported but nobody is notified")
	}
	metrics, err := dispatch.NewMetrics(deps.Registerer)
	if err != nil {
		return err
	}
	now := a.opts.Now
	if now == nil {
		now = time.Now
	}
	copts := Consumer
	if c := a.opts.Consumer; c != nil {
		copts.MaxDeliver, copts.AckWait, copts.Backoff = c.MaxDeliver, c.AckWait, c.Backoff
	}
	n, err := dispatch.New(dispatch.Config{
		Policy:     store,
		Reports:    a.reportStore(reports),
		Incidents:  incident.NewStore(incidents, a.opts.IncidentLease, now),
		Chains:     &a.ledger,
		Publisher:  deps.Bus,
		Holder:     a.holder,
		HTTPClient: a.opts.HTTPClient,
		Backoff:    notify.Backoff{Attempts: a.opts.RetryAttempts, Initial: a.opts.RetryInitial, Max: 8 * a.opts.RetryInitial},
		LedgerWait: a.opts.LedgerWait,
		MaxDeliver: copts.MaxDeliver,
		Now:        now,
		Metrics:    metrics,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	// The consumer and the watcher outlive the start-up context: they end
	// in Stop, after in-flight notifications finish.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.watching = make(chan struct{})
	go func() {
		defer close(a.watching)
		if store != nil && a.opts.Policy == nil {
			store.Watch(runCtx, a.opts.PolicyReload, log)
		}
	}()
	a.consumer, err = deps.Bus.Consume(runCtx, copts, n.Handle)
	if err != nil {
		cancel()
		<-a.watching
		return err
	}
	log.Info("notifier consuming", "holder", a.holder, "report_dir", a.opts.ReportDir)
	return nil
}

// Stop drains the consumer (the notification in flight finishes) and stops
// watching the policy; the reports route answers 503 until the next Start.
func (a *App) Stop(ctx context.Context) error {
	if a.cancel == nil {
		return nil
	}
	var err error
	if a.consumer != nil {
		err = a.consumer.Drain(ctx)
	}
	a.cancel()
	<-a.watching
	a.cancel, a.consumer = nil, nil
	a.reports.Store(nil)
	return err
}

// Restartable implements service.Restarter: a Start after Stop consumes
// again from the durable consumer, so what arrived meanwhile is notified
// then, with its metrics on the new registry and the same incident
// holder.
func (a *App) Restartable() {}

// Ready implements service.ReadyChecker: the durable consumer exists.
func (a *App) Ready(ctx context.Context) error {
	if a.bus == nil {
		return errors.New("not started")
	}
	if _, err := a.bus.JetStream().Consumer(ctx, bus.StreamName, Consumer.Durable); err != nil {
		return fmt.Errorf("consumer %s: %w", Consumer.Durable, err)
	}
	return nil
}

var (
	_ service.Component    = (*App)(nil)
	_ service.ReadyChecker = (*App)(nil)
	_ service.Restarter    = (*App)(nil)
)

// holderName names this instance in incident claims: host, process and a
// random part, so two notifiers never take each other for themselves.
func holderName() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("notifier: instance name: %w", err)
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)), nil
}

// ReportsBucket is the key-value bucket that holds the rollback reports.
const ReportsBucket = report.Bucket

// Report formats.
const (
	FormatMarkdown = "md"
	FormatJSON     = "json"
)

// ReportPath is where the stored rollback reports are served:
//
//	GET /notifier/reports/{rollout}[?format=md|json]
const ReportPath = "/notifier/reports/"

// maxRolloutID bounds a rollout id in a request; the deployer's are short.
const maxRolloutID = 256

func (a *App) reportStore(kv jetstream.KeyValue) *report.Store {
	s := report.NewStore(kv, a.opts.ReportDir)
	a.reports.Store(s)
	return s
}

// Routes implements service.Router: the stored rollback reports, read by
// `rampart report rollback`. Answers: 200 with the report (text/markdown or
// application/json); 400 for a bad format or rollout id; 404 when no report
// is stored for the rollout; 503 before the notifier has started.
func (a *App) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+ReportPath+"{rollout}", a.serveReport)
}

var _ service.Router = (*App)(nil)

func (a *App) serveReport(w http.ResponseWriter, r *http.Request) {
	id, format := r.PathValue("rollout"), r.URL.Query().Get("format")
	if format == "" {
		format = FormatMarkdown
	}
	switch {
	case format != FormatMarkdown && format != FormatJSON:
		http.Error(w, fmt.Sprintf("format %q: want %s or %s", format, FormatMarkdown, FormatJSON), http.StatusBadRequest)
		return
	case len(id) > maxRolloutID || strings.ContainsFunc(id, unicode.IsControl):
		http.Error(w, fmt.Sprintf("rollout id: want at most %d printable characters", maxRolloutID), http.StatusBadRequest)
		return
	}
	store := a.reports.Load()
	if store == nil {
		http.Error(w, "the notifier has not started", http.StatusServiceUnavailable)
		return
	}
	rd, err := store.Get(r.Context(), id)
	switch {
	case errors.Is(err, report.ErrNotFound):
		http.Error(w, fmt.Sprintf("no rollback report is stored for rollout %q", id), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "reading the report: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	body, ctype := rd.Markdown, "text/markdown; charset=utf-8"
	if format == FormatJSON {
		body, ctype = rd.JSON, "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	_, _ = w.Write(body)
}
