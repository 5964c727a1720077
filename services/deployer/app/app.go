// Package app is the deployer service as a component: the same in its own
// binary and inside `rampart up`. It runs each application's traffic router,
// drives rollouts from signed scan verdicts, rolls back on anomalies and
// serves the operator API.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
	"github.com/rampartci/rampart/services/deployer/adminapi"
	"github.com/rampartci/rampart/services/deployer/internal/admin"
	"github.com/rampartci/rampart/services/deployer/internal/console"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
)

// Workload makes an artifact run in an application's slot; see Options.Workload.
type Workload = rollout.Workload

// Slot names where a version runs.
type Slot = rollout.Slot

// The two slots.
const (
	SlotStable = rollout.SlotStable
	SlotCanary = rollout.SlotCanary
)

// StageSlot is the slot of a pre-production stage (rampart.yaml stages):
// a candidate runs there while the stage's checks look at it.
func StageSlot(stage string) Slot { return rollout.StageSlot(stage) }

// Consumer is the deployer's durable consumer: scan verdicts to promote, and
// anomalies to roll back on.
var Consumer = bus.ConsumerOptions{
	Durable:        "deployer",
	FilterSubjects: []string{"rampart.scan.>", "rampart.anomaly.>"},
	// A request is acked once the application's owner has it; give
	// transient failures (the bucket, a router) room before dead-lettering.
	MaxDeliver: 10,
	Backoff:    []time.Duration{200 * time.Millisecond, time.Second, 5 * time.Second},
}

// Options configures the deployer.
type Options struct {
	// PolicyFile is rampart.yaml; without one the deployer delivers nothing.
	PolicyFile string
	// ScannerKeyFile holds the scanner's public key (base64 Ed25519).
	ScannerKeyFile string
	// GatePolicyFiles are the scanner gate policies a passing verdict may
	// have been judged under (default: the default policy only).
	GatePolicyFiles []string
	// Owner names this deployer in application leases (default: host name).
	Owner string
	// OperatorToken and ViewerToken are the operator API's bearer tokens
	// (references: env:NAME or file:PATH). The operator's may act on
	// rollouts, the viewer's only read them; with neither, the API refuses
	// every request.
	OperatorToken policy.Secret
	ViewerToken   policy.Secret
	// ChaosToken opens the fault routes (/deployer/faults) to chaos
	// drills and nothing else; without it no fault can be injected.
	ChaosToken policy.Secret

	// Set by an embedding program instead of the files above.
	Policy     *policy.Store
	ScannerKey ed25519.PublicKey
	// Workload deploys candidates to the slots of the applications whose
	// policy names no workload; nil leaves that to others.
	Workload Workload
	// Replicas of RAMPART_ROLLOUTS (0 or 1 embedded, 3 in a cluster).
	Replicas int

	// The console (under /console/) reads the ledger and the notifier
	// through their HTTP APIs at these base URLs; LedgerCAFile is the CA
	// that signed their certificate (https), LedgerKeyFile the ledger's
	// public key that "verify now" trusts. An embedding program may call
	// UseServices instead.
	LedgerURL, NotifierURL, LedgerCAFile, LedgerKeyFile string

	// secrets records the secret flags given a value instead of a reference.
	secrets service.SecretFlags
	// kubernetes, when set (tests), gives the workloads their client.
	kubernetes func(kubeconfig string) (kubernetes.Interface, error)
}

// BindFlags registers the options as flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.PolicyFile, "policy", o.PolicyFile, "rampart.yaml: the applications to deliver")
	fs.StringVar(&o.ScannerKeyFile, "scanner-key", o.ScannerKeyFile, "file with the scanner's public key, to verify scan verdicts")
	fs.Func("gate-policy", "a scanner gate policy file whose verdicts are accepted (repeatable; default: the default policy only)", func(v string) error {
		o.GatePolicyFiles = append(o.GatePolicyFiles, v)
		return nil
	})
	fs.StringVar(&o.Owner, "owner", o.Owner, "name of this deployer in application leases (default: host name)")
	o.secrets.Var(fs, &o.OperatorToken, "operator-token", "bearer token of the operator API's operator role (read and act on rollouts)")
	o.secrets.Var(fs, &o.ViewerToken, "viewer-token", "bearer token of the operator API's viewer role (read rollouts)")
	o.secrets.Var(fs, &o.ChaosToken, "chaos-token", "bearer token that may inject chaos drills' faults into canaries at the local router (unset: no fault can be)")
	fs.IntVar(&o.Replicas, "kv-replicas", o.Replicas, "replicas of the deployer's key-value bucket (1 embedded, 3 in a cluster)")
	fs.StringVar(&o.LedgerURL, "ledger-url", o.LedgerURL, "base URL of the ledger's query API, for the console's release stories, scans and ledger status")
	fs.StringVar(&o.NotifierURL, "notifier-url", o.NotifierURL, "base URL of the notifier, for the console's rollback reports")
	fs.StringVar(&o.LedgerCAFile, "services-ca", o.LedgerCAFile, "CA file that signed the ledger's and notifier's certificates (https)")
	fs.StringVar(&o.LedgerKeyFile, "ledger-key", o.LedgerKeyFile, "the ledger's public key file (ledger.key.pub): the console's \"verify now\" trusts it")
}

// App is the deployer component.
type App struct {
	opts         Options
	tokens       admin.Tokens
	policy       *policy.Store
	gatePolicies []string // hex digests of the accepted gate policies
	log          *slog.Logger
	// run is the start in force, nil while stopped: a chaos drill may
	// stop the deployer and start it again in the same process
	// (service.Restarter), and every route answers for the run in force.
	run atomic.Pointer[run]
	// services is what UseServices gave, for every start's console.
	svcMu    sync.Mutex
	services *services
}

// run is one start of the deployer: what Stop ends and the next Start
// builds anew from RAMPART_ROLLOUTS.
type run struct {
	routers  map[string]router // by application
	manager  *rollout.Manager
	console  *console.Console
	consumer *bus.Consumer
	cancel   context.CancelFunc
	// mux serves the operator API, the fault routes and the console of
	// this run.
	mux *http.ServeMux
}

// services are the ledger and the notifier the console reads.
type services struct {
	ledgerURL, notifierURL string
	hc                     *http.Client
	ledgerKeyFile          string
}

// New checks the options; the work starts in Start.
func New(opts Options) (*App, error) {
	if err := opts.secrets.Err(); err != nil {
		return nil, fmt.Errorf("deployer: %w", err)
	}
	if r := opts.Replicas; r != 0 && r != 1 && r != 3 && r != 5 {
		return nil, fmt.Errorf("deployer: --kv-replicas %d: want 1, 3 or 5", r)
	}
	a := &App{opts: opts}
	resolve := func(flag string, s policy.Secret) (string, error) {
		if s.IsZero() {
			return "", nil
		}
		v, err := s.Resolve()
		if err != nil {
			return "", fmt.Errorf("deployer: --%s: %w", flag, err)
		}
		return v, nil
	}
	var err error
	if a.tokens.Operator, err = resolve("operator-token", opts.OperatorToken); err != nil {
		return nil, err
	}
	if a.tokens.Viewer, err = resolve("viewer-token", opts.ViewerToken); err != nil {
		return nil, err
	}
	if a.tokens.Chaos, err = resolve("chaos-token", opts.ChaosToken); err != nil {
		return nil, err
	}
	if a.tokens.Chaos != "" && (a.tokens.Chaos == a.tokens.Operator || a.tokens.Chaos == a.tokens.Viewer) {
		return nil, errors.New("deployer: --chaos-token is the operator's or the viewer's token: give drills their own")
	}
	if a.tokens.Operator != "" && a.tokens.Operator == a.tokens.Viewer {
		return nil, errors.New("deployer: --operator-token and --viewer-token are the same token: the viewer could act")
	}
	switch {
	case opts.Policy != nil:
		a.policy = opts.Policy
	case opts.PolicyFile != "":
		s, err := policy.NewStore(opts.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("deployer: %w", err)
		}
		a.policy = s
	default:
		a.policy = policy.StoreOf(&policy.Policy{Version: 1})
	}
	if a.opts.ScannerKey == nil {
		if opts.ScannerKeyFile == "" {
			return nil, errors.New("deployer: --scanner-key is required: verdicts are trusted only when signed by the scanner")
		}
		key, err := events.LoadVerdictPublicKey(opts.ScannerKeyFile)
		if err != nil {
			return nil, fmt.Errorf("deployer: %w", err)
		}
		a.opts.ScannerKey = key
	}
	for _, f := range opts.GatePolicyFiles {
		g, err := gate.LoadFile(f)
		if err != nil {
			return nil, fmt.Errorf("deployer: gate policy: %w", err)
		}
		a.gatePolicies = append(a.gatePolicies, g.Digest())
	}
	return a, nil
}

// Name implements service.Component.
func (a *App) Name() string { return "deployer" }

// Start runs the routers, resumes unfinished rollouts and starts consuming.
func (a *App) Start(ctx context.Context, deps service.Deps) (err error) {
	if a.log == nil { // the same logger at every start; set before any request
		a.log = deps.Logger
	}
	kv, err := deps.Bus.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: rollout.Bucket, History: 10,
		Description: "Rampart rollouts and application release history", Replicas: max(a.opts.Replicas, 1)})
	if err != nil {
		return err
	}
	r := &run{routers: map[string]router{}}
	defer func() {
		if err != nil {
			_ = r.stop(context.WithoutCancel(ctx)) // what had started
		}
	}()
	byApp := map[string]rollout.Router{}
	workloads := map[string]rollout.Workload{}
	for _, app := range a.policy.Current().Apps {
		w, err := newWorkload(app, workloadOptions{Logger: deps.Logger, Kubernetes: a.opts.kubernetes})
		if err != nil {
			return err
		}
		if w != nil {
			workloads[app.Name] = w
		}
		rt, err := newRouter(app, routerOptions{Logger: deps.Logger, Registerer: deps.Registerer})
		if err != nil {
			return err
		}
		if err := rt.Start(ctx); err != nil {
			return fmt.Errorf("start router of %s: %w", app.Name, err)
		}
		r.routers[app.Name] = rt
		byApp[app.Name] = rt
	}
	r.manager, err = rollout.NewManager(kv, deps.Bus, a.policy, byApp, rollout.Options{
		ScannerKey: a.opts.ScannerKey, GatePolicies: a.gatePolicies, Owner: a.opts.Owner, Workload: a.opts.Workload, Workloads: workloads, Registerer: deps.Registerer,
	}, deps.Logger)
	if err != nil {
		return err
	}
	if err := r.manager.Start(ctx); err != nil {
		return fmt.Errorf("resume rollouts: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.console, err = console.New(console.Options{Tokens: console.Tokens{Viewer: a.tokens.Viewer, Operator: a.tokens.Operator}, Rollouts: r.manager, Policy: a.policy, Logger: deps.Logger})
	if err != nil {
		return err
	}
	if err := r.console.Follow(runCtx, kv, deps.Stopping); err != nil {
		return err
	}
	a.svcMu.Lock()
	svc := a.services
	a.svcMu.Unlock()
	if svc == nil && (a.opts.LedgerURL != "" || a.opts.NotifierURL != "") {
		hc, err := tlsgen.HTTPClient(a.opts.LedgerCAFile, 10*time.Second)
		if err != nil {
			return fmt.Errorf("deployer: --services-ca: %w", err)
		}
		svc = &services{ledgerURL: a.opts.LedgerURL, notifierURL: a.opts.NotifierURL, hc: hc, ledgerKeyFile: a.opts.LedgerKeyFile}
	}
	if svc != nil {
		if err := svc.useIn(r.console); err != nil {
			return err
		}
	}
	r.consumer, err = deps.Bus.Consume(runCtx, Consumer, r.manager.Handle)
	if err != nil {
		return err
	}
	go a.policy.Watch(runCtx, 2*time.Second, deps.Logger)
	r.mux = http.NewServeMux()
	admin.Routes(r.mux, r.manager, a.tokens)
	admin.FaultRoutes(r.mux, a, a.tokens)
	r.console.Routes(r.mux)
	a.run.Store(r)
	names := make([]string, 0, len(byApp))
	for n := range byApp {
		names = append(names, n)
	}
	if a.tokens.Operator == "" && a.tokens.Viewer == "" {
		deps.Logger.Warn("no operator API token configured (--operator-token, --viewer-token): " + adminapi.PathRollouts + " refuses every request")
	}
	deps.Logger.Info("deployer ready", "applications", strings.Join(names, ","))
	return nil
}

// Stop drains the consumer, stops driving rollouts (their state stays for
// the next start) and shuts the routers down. The routes answer 503 until
// the next Start.
func (a *App) Stop(ctx context.Context) error {
	if r := a.run.Swap(nil); r != nil {
		return r.stop(ctx)
	}
	return nil
}

// Restartable implements service.Restarter: a Start after Stop resumes
// the rollouts from RAMPART_ROLLOUTS (a restarted router is put back to
// the recorded weight) on new routers and a new registry.
func (a *App) Restartable() {}

var _ service.Restarter = (*App)(nil)

func (r *run) stop(ctx context.Context) error {
	var errs []error
	if r.consumer != nil {
		errs = append(errs, r.consumer.Drain(ctx))
	}
	if r.manager != nil {
		r.manager.Stop()
	}
	if r.cancel != nil {
		r.cancel()
	}
	if r.console != nil {
		r.console.Wait()
	}
	for _, rt := range r.routers {
		errs = append(errs, rt.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// Routes serves the operator API and the fault routes under /deployer/
// and the console under /console/, each request by the run in force; 503
// while the deployer is stopped.
func (a *App) Routes(mux *http.ServeMux) {
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r := a.run.Load()
		if r == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(adminapi.Error{Error: "the deployer is not running"})
			return
		}
		r.mux.ServeHTTP(w, req)
	})
	mux.Handle(pathDeployer, h)
	mux.Handle(console.Path, h)
}

// pathDeployer holds the operator API (adminapi.PathRollouts) and the fault
// routes (adminapi.PathFaults).
const pathDeployer = "/deployer/"

// UseServices tells the console where the ledger and the notifier serve
// their HTTP APIs (both at base in `rampart up`), with hc trusting their
// certificate, and which ledger key "verify now" trusts. Call it after
// Start; every later start's console uses them too.
func (a *App) UseServices(base string, hc *http.Client, ledgerKeyFile string) error {
	r := a.run.Load()
	if r == nil {
		return errors.New("deployer: UseServices before Start")
	}
	svc := &services{ledgerURL: base, notifierURL: base, hc: hc, ledgerKeyFile: ledgerKeyFile}
	if err := svc.useIn(r.console); err != nil {
		return err
	}
	a.svcMu.Lock()
	a.services = svc
	a.svcMu.Unlock()
	return nil
}

func (s *services) useIn(c *console.Console) error {
	if s.ledgerURL != "" {
		lc, err := client.New(s.ledgerURL, s.hc)
		if err != nil {
			return fmt.Errorf("deployer: ledger: %w", err)
		}
		c.UseLedger(lc, s.ledgerKeyFile)
	}
	if s.notifierURL != "" {
		if err := c.UseNotifier(s.notifierURL, s.hc); err != nil {
			return fmt.Errorf("deployer: %w", err)
		}
	}
	return nil
}

// Ready implements service.ReadyChecker.
func (a *App) Ready(context.Context) error {
	if a.run.Load() == nil {
		return errors.New("not running")
	}
	return nil
}

// RouterAddr is the address app's local router listens on, for embedding
// programs that send traffic through it; "" when it has none.
func (a *App) RouterAddr(app string) string {
	r := a.run.Load()
	if r == nil {
		return ""
	}
	if l, ok := r.routers[app].(interface{ Addr() string }); ok {
		return l.Addr()
	}
	return ""
}

// Weight is app's canary weight at its router right now.
func (a *App) Weight(app string) (int, bool) {
	r := a.run.Load()
	if r == nil {
		return 0, false
	}
	rt, ok := r.routers[app]
	if !ok {
		return 0, false
	}
	return rt.Weight(), true
}
