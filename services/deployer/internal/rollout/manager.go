package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/kv"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Router shifts one application's traffic between stable and canary.
type Router interface {
	SetWeight(ctx context.Context, canaryPercent int) error
}

// Source is the CloudEvents source of the deployer's events.
const Source = "/rampart/deployer"

// Options configures a Manager.
type Options struct {
	// ScannerKey verifies scan verdicts; verdicts that do not verify are refused.
	ScannerKey ed25519.PublicKey
	// GatePolicies are the hex SHA-256 digests of the gate policies a
	// passing image verdict may have been judged under (its verification
	// summary names one); default: the default gate policy only.
	GatePolicies []string
	// Owner names this process in application leases (default: the host
	// name). A restarted deployer with the same name takes its
	// applications back at once.
	Owner string
	// Lease is how long an application stays with its owner without
	// renewal (default 10s); after that another replica takes it over.
	Lease time.Duration
	// Workloads holds the Workload of each application that has one;
	// Workload is the one for the others (nil: none, their versions are
	// deployed by other means).
	Workloads map[string]Workload
	Workload  Workload
	// WorkloadPoll is how often a slot is checked while the deployer waits
	// for it to serve a new version (default 1s).
	WorkloadPoll time.Duration
	// Registerer receives the metrics.
	Registerer prometheus.Registerer
}

// Manager turns the deployer's events and the operator's actions into
// requests for each application's owner, and runs the owners.
type Manager struct {
	store   store
	staged  *kv.Store[Staged]
	kv      jetstream.KeyValue
	bus     *bus.Bus
	policy  *policy.Store
	routers map[string]Router
	opts    Options
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	// attestations verifies the in-toto attestations of verdicts.
	attestations *attest.Verifier

	ctx    context.Context // ends when the Manager stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	owners map[string]*owner // by application
}

// NewManager returns a Manager over the bucket kv. routers holds one Router
// per application name.
func NewManager(kv jetstream.KeyValue, b *bus.Bus, pol *policy.Store, routers map[string]Router, opts Options, logger *slog.Logger) (*Manager, error) {
	if len(opts.ScannerKey) != ed25519.PublicKeySize {
		return nil, errors.New("deployer: the scanner's Ed25519 public key is required to trust verdicts")
	}
	attestations, err := attest.NewVerifier(opts.ScannerKey)
	if err != nil {
		return nil, fmt.Errorf("deployer: %w", err)
	}
	if len(opts.GatePolicies) == 0 {
		opts.GatePolicies = []string{gate.Default().Digest()}
	}
	if opts.Owner == "" {
		host, _ := os.Hostname()
		opts.Owner = "deployer@" + host
	}
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Second
	}
	if opts.WorkloadPoll <= 0 {
		opts.WorkloadPoll = time.Second
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		store: newStore(kv), staged: newStaged(kv), kv: kv, bus: b, policy: pol, routers: routers, opts: opts,
		log: logger, metrics: m, now: time.Now, attestations: attestations, ctx: ctx, cancel: cancel, owners: map[string]*owner{},
	}, nil
}

func newStore(b jetstream.KeyValue) store {
	return store{rollouts: kv.New[Rollout](b), apps: kv.New[AppState](b)}
}

// Start starts an owner for every application in the policy: each takes
// its application's lease if the application has work and nobody else
// holds it, then resumes or finishes what is under way. It also watches the
// application records, so that an owner hears at once of a request another
// replica left in its inbox.
func (m *Manager) Start(context.Context) error {
	// The watch lives as long as the Manager, not as ctx.
	w, err := m.kv.Watch(m.ctx, "app.*", jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch application state: %w", err)
	}
	m.wg.Go(func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-m.ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				var a AppState
				if e != nil && json.Unmarshal(e.Value(), &a) == nil && len(a.Inbox) > 0 {
					m.wake(strings.TrimPrefix(e.Key(), "app."))
				}
			}
		}
	})
	for _, app := range m.policy.Current().Apps {
		m.owner(app.Name)
	}
	return nil
}

// Stop stops the owners; the state stays for the next start, and the lease
// runs out unless this process, by the same name, starts again first.
func (m *Manager) Stop() {
	m.cancel()
	m.wg.Wait()
}

// owner returns app's owner in this process, started on first use.
func (m *Manager) owner(app string) *owner {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.owners[app]
	if !ok {
		o = newOwner(m, app)
		m.owners[app] = o
		if m.ctx.Err() == nil {
			m.wg.Go(func() { o.run(m.ctx) })
		}
	}
	return o
}

// wake tells app's owner, if it runs here, that its inbox holds requests.
func (m *Manager) wake(app string) {
	m.mu.Lock()
	o := m.owners[app]
	m.mu.Unlock()
	if o != nil {
		o.poke()
	}
}

// errStopped is returned for a request made while the Manager stops.
var errStopped = errors.New("deployer is stopping")

// submit hands req to its application's owner and waits until the owner
// has applied it or left it in the inbox for the owner elsewhere
// (errForwarded).
func (m *Manager) submit(ctx context.Context, req Request) (*Rollout, error) {
	c := call{req: req, done: make(chan answer, 1)}
	select {
	case m.owner(req.App).calls <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-m.ctx.Done():
		return nil, errStopped
	}
	select {
	case a := <-c.done:
		return a.rollout, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-m.ctx.Done():
		return nil, errStopped
	}
}

// Handle acts on one event from the deployer's consumer: it becomes a
// request for the application's owner, and is acked once the owner has
// applied it (or, on another replica, has it in its inbox).
func (m *Manager) Handle(ctx context.Context, d bus.Delivery) error {
	var req *Request
	var err error
	switch events.KindOf(d.Event.Type()) {
	case events.KindScan:
		req, err = m.scanRequest(d.Event)
	case events.KindAnomaly:
		req, err = m.anomalyRequest(d.Event)
	}
	if err != nil || req == nil {
		return err
	}
	if req.Candidate != nil {
		req.Candidate.TraceParent = bus.TraceParent(ctx)
	}
	_, err = m.submit(ctx, *req)
	if errors.Is(err, errForwarded) {
		return nil
	}
	return err
}

// rolloutID is derived from the verdict, so a redelivered verdict is the
// same rollout.
func rolloutID(app, scanEventID string) string {
	sum := sha256.Sum256([]byte(scanEventID))
	return app + "-" + hex.EncodeToString(sum[:5])
}

func (m *Manager) scanRequest(ev cloudevents.Event) (*Request, error) {
	received := time.Now()
	s, err := events.VerifyScan(ev, m.opts.ScannerKey)
	if errors.Is(err, events.ErrUnsigned) || errors.Is(err, events.ErrBadSignature) {
		m.metrics.verdictsRefused.WithLabelValues(refusal(err)).Inc()
		m.log.Warn("refusing scan verdict", "event", ev.ID(), "err", err)
		return nil, bus.Poison(fmt.Errorf("refused: %w", err))
	}
	if err != nil {
		return nil, bus.Poison(err)
	}
	if s.TargetKind != "image" && s.TargetKind != verdictStage && s.TargetKind != verdictDAST {
		return nil, nil
	}
	oci, err := events.ParseOCI(s.Target)
	if err != nil {
		return nil, bus.Poison(fmt.Errorf("verdict target: %w", err))
	}
	app, ok := m.policy.Current().AppForImage(oci.RepositoryURL)
	if !ok {
		m.log.Debug("verdict for an image no application delivers", "image", oci.RepositoryURL)
		return nil, nil
	}
	if s.TargetKind != "image" {
		return m.stageRequest(app, s, ev, received)
	}
	if s.Outcome == events.OutcomePass {
		if err := m.checkAttestations(s, oci.Digest); err != nil {
			m.metrics.verdictsRefused.WithLabelValues("attestation").Inc()
			m.log.Warn("refusing scan verdict", "event", ev.ID(), "err", err)
			return nil, bus.Poison(fmt.Errorf("refused: %w", err))
		}
	}
	req := &Request{Kind: KindVerdict, ID: ev.ID(), App: app.Name, Received: received,
		Candidate: &Candidate{Artifact: s.Target, ScanEventID: ev.ID(), ChainID: events.ChainID(ev)}}
	if pre := app.PreProduction(); len(pre) > 0 && s.Outcome == events.OutcomePass {
		// Staged: the candidate goes to its first stage, not the canary.
		req.Kind, req.Stage = KindStage, pre[0].Name
		return req, nil
	}
	if s.Outcome != events.OutcomePass {
		// A blocked verdict for a candidate in flight (a re-scan after a
		// vulnerability DB update) halts it.
		req.Kind, req.Reason = KindBlocked, "scan verdict "+s.Outcome+": "+s.Reason
	}
	return req, nil
}

func (m *Manager) anomalyRequest(ev cloudevents.Event) (*Request, error) {
	received := time.Now()
	a, err := events.AnomalyOf(ev)
	if err != nil {
		return nil, bus.Poison(err)
	}
	if _, ok := m.policy.Current().App(a.App); !ok {
		return nil, nil
	}
	req := &Request{ID: ev.ID(), App: a.App, Rollout: a.RolloutID, Anomaly: &a, Received: received}
	switch a.Target {
	case events.TargetCanary:
		req.Kind = KindAnomaly
	case events.TargetRelease:
		req.Kind = KindLiveAnomaly
	default:
		return nil, nil // TargetNone: recorded by the ledger, nothing to do
	}
	return req, nil
}

// List returns every rollout, newest first.
func (m *Manager) List(ctx context.Context) ([]Rollout, error) { return m.store.list(ctx) }

// Rollout reads one rollout.
func (m *Manager) Rollout(ctx context.Context, id string) (Rollout, error) {
	e, err := m.store.rollout(ctx, id)
	return e.Value, err
}

// Act carries out an operator's action on rollout id and returns the
// rollout after it. On a replica that does not own the application it
// waits until the owner has applied the action. by is who asked: the owner
// announces the applied action with it (events.TypeInterventionApplied).
func (m *Manager) Act(ctx context.Context, id string, action adminapi.Action, reason string, by adminapi.Actor) (Rollout, error) {
	e, err := m.store.rollout(ctx, id)
	if err != nil {
		return Rollout{}, err
	}
	if e.Value.Phase.Terminal() {
		return e.Value, fmt.Errorf("%w (%s)", ErrFinished, e.Value.Phase)
	}
	now := m.now()
	req := Request{Kind: Kind(action), ID: fmt.Sprintf("operator:%s:%s:%d", action, id, now.UnixNano()), App: e.Value.App,
		Rollout: id, Reason: reason, Actor: by.Name, Via: by.Via, Received: time.Now()}
	r, err := m.submit(ctx, req)
	if errors.Is(err, errForwarded) {
		return m.awaitApplied(ctx, req)
	}
	if err != nil {
		return Rollout{}, err
	}
	return *r, nil
}

// awaitApplied waits until the owner elsewhere has taken req out of the
// inbox, and returns its rollout then.
func (m *Manager) awaitApplied(ctx context.Context, req Request) (Rollout, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*m.opts.Lease)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		a, err := m.store.app(ctx, req.App)
		if err != nil {
			return Rollout{}, err
		}
		pending := false
		for _, r := range a.Value.Inbox {
			pending = pending || r.ID == req.ID
		}
		if !pending {
			return m.Rollout(ctx, req.Rollout)
		}
		select {
		case <-ctx.Done():
			return Rollout{}, fmt.Errorf("the owner of %s has not applied the %s yet: %w", req.App, req.Kind, ctx.Err())
		case <-tick.C:
		}
	}
}

func (m *Manager) meta(r *Rollout, id, causedBy string) events.Meta {
	return events.Meta{ID: id, Source: Source, Time: m.now(), ChainID: r.ChainID, CausedBy: causedBy, App: r.App}
}

// checkAttestations requires a passing image verdict to carry a
// verification summary signed by the scanner that says PASSED for this
// digest and purl under a known gate policy (decision 0024). Verdicts without
// one, from before attestations, are refused.
func (m *Manager) checkAttestations(s events.Scan, digest string) error {
	want := attest.Expect{Digest: digest, ResourceURI: s.Target, Policies: m.opts.GatePolicies}
	var errs []error
	for _, raw := range s.Attestations {
		if attest.PredicateTypeOf(raw) != attest.PredicateVSA {
			continue
		}
		_, err := m.attestations.VerifySummary(m.ctx, raw, want)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return errNoSummary
	}
	return errors.Join(errs...)
}

// errNoSummary: a passing image verdict without a verification summary.
var errNoSummary = errors.New("passing image verdict carries no verification summary attestation")

func refusal(err error) string {
	if errors.Is(err, events.ErrUnsigned) {
		return "unsigned"
	}
	return "bad_signature"
}
