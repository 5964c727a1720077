package rollout

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Router shifts one application's traffic between stable and canary.
type Router interface {
	SetWeight(ctx context.Context, canaryPercent int) error
}

// Slot is where a version runs: the stable or the canary upstream.
type Slot string

// The two slots every application has.
const (
	SlotStable Slot = "stable"
	SlotCanary Slot = "canary"
)

// Workload makes an artifact run in an application's slot. Where something
// else deploys the slots (a GitOps controller, a Kubernetes Deployment per
// slot), the deployer runs with no Workload and only moves traffic.
type Workload interface {
	Deploy(ctx context.Context, app policy.App, slot Slot, artifact string) error
}

// Source is the CloudEvents source of the deployer's events.
const Source = "/rampart/deployer"

// Options configures a Manager.
type Options struct {
	// ScannerKey verifies scan verdicts; verdicts that do not verify are refused.
	ScannerKey ed25519.PublicKey
	// Owner names this process in rollout leases (default: the host name).
	// A restarted deployer with the same name takes its rollouts back at once.
	Owner string
	// Lease is how long a rollout stays with its owner without renewal
	// (default 10s); after that another replica takes it over.
	Lease time.Duration
	// Workload deploys candidates to slots; nil leaves that to others.
	Workload Workload
	// Registerer receives the metrics.
	Registerer prometheus.Registerer
}

// Manager runs the rollouts of every configured application.
type Manager struct {
	store    *Store
	bus      *bus.Bus
	policy   *policy.Store
	routers  map[string]Router
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	now      func() time.Time
	rootCtx  context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	appLocks sync.Map // app name → *sync.Mutex: traffic changes of one app are serial

	mu      sync.Mutex
	drivers map[string]chan struct{} // rollout id → wake-up channel, for rollouts driven here
	// active is each application's rollout in flight as this process last
	// saw it, so an anomaly against it can cut traffic before any state is
	// read. The bucket stays the record; this is only a hint.
	active sync.Map // app name → rollout id
}

// NewManager returns a Manager over the bucket kv. routers holds one Router
// per application name.
func NewManager(kv jetstream.KeyValue, b *bus.Bus, pol *policy.Store, routers map[string]Router, opts Options, logger *slog.Logger) (*Manager, error) {
	if len(opts.ScannerKey) != ed25519.PublicKeySize {
		return nil, errors.New("deployer: the scanner's Ed25519 public key is required to trust verdicts")
	}
	if opts.Owner == "" {
		host, _ := os.Hostname()
		opts.Owner = "deployer@" + host
	}
	if opts.Lease <= 0 {
		opts.Lease = 10 * time.Second
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		store: &Store{kv: kv}, bus: b, policy: pol, routers: routers, opts: opts,
		log: logger, metrics: m, now: time.Now, rootCtx: ctx, cancel: cancel,
		drivers: map[string]chan struct{}{},
	}, nil
}

// Store gives read access to rollout state.
func (m *Manager) Store() *Store { return m.store }

// Start resumes every unfinished rollout and finishes any rollout whose end
// was not fully carried out (a deployer killed in between).
func (m *Manager) Start(ctx context.Context) error {
	all, err := m.store.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		if !r.Phase.Terminal() {
			m.active.Store(r.App, r.ID)
			m.startDriver(r.ID)
			continue
		}
		a, err := m.store.App(ctx, r.App)
		if err != nil {
			return err
		}
		if a.Active == r.ID {
			if err := m.finish(ctx, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stop stops driving rollouts; their state stays for the next start.
func (m *Manager) Stop() {
	m.cancel()
	m.wg.Wait()
}

// Handle acts on one event from the deployer's consumer.
func (m *Manager) Handle(ctx context.Context, d bus.Delivery) error {
	switch events.KindOf(d.Event.Type()) {
	case events.KindScan:
		return m.handleScan(ctx, d.Event)
	case events.KindAnomaly:
		return m.handleAnomaly(ctx, d.Event)
	}
	return nil
}

func (m *Manager) lockApp(app string) func() {
	mu, _ := m.appLocks.LoadOrStore(app, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// rolloutID is derived from the verdict, so a redelivered verdict is the
// same rollout.
func rolloutID(app, scanEventID string) string {
	sum := sha256.Sum256([]byte(scanEventID))
	return app + "-" + hex.EncodeToString(sum[:5])
}

func (m *Manager) handleScan(ctx context.Context, ev cloudevents.Event) error {
	s, err := events.VerifyScan(ev, m.opts.ScannerKey)
	if errors.Is(err, events.ErrUnsigned) || errors.Is(err, events.ErrBadSignature) {
		m.metrics.verdictsRefused.WithLabelValues(refusal(err)).Inc()
		m.log.Warn("refusing scan verdict", "event", ev.ID(), "err", err)
		return bus.Poison(fmt.Errorf("refused: %w", err))
	}
	if err != nil {
		return bus.Poison(err)
	}
	if s.TargetKind != "image" {
		return nil
	}
	oci, err := events.ParseOCI(s.Target)
	if err != nil {
		return bus.Poison(fmt.Errorf("verdict target: %w", err))
	}
	app, ok := m.policy.Current().AppForImage(oci.RepositoryURL)
	if !ok {
		m.log.Debug("verdict for an image no application delivers", "image", oci.RepositoryURL)
		return nil
	}
	log := m.log.With("app", app.Name, "artifact", s.Target)
	if s.Outcome != events.OutcomePass {
		// A blocked verdict for a candidate in flight (a re-scan after a
		// vulnerability DB update) halts it.
		return m.haltArtifact(ctx, app, s.Target, ev.ID(), "scan verdict "+s.Outcome+": "+s.Reason)
	}

	id := rolloutID(app.Name, ev.ID())
	chain := events.ChainID(ev)
	var queued bool
	state, err := m.store.updateApp(ctx, app.Name, func(a *AppState) (bool, error) {
		queued = false
		switch {
		case a.Active == id:
			return false, nil // redelivered: carry on below
		case a.Live() != nil && a.Live().Artifact == s.Target && a.Active == "":
			return false, nil // already live
		case a.Active != "":
			queued = true
			if a.Queued != nil && a.Queued.ScanEventID == ev.ID() {
				return false, nil
			}
			a.Queued = &Candidate{Artifact: s.Target, ScanEventID: ev.ID(), ChainID: chain}
			return true, nil
		}
		a.Active = id
		return true, nil
	})
	if err != nil {
		return err
	}
	if queued {
		log.Info("candidate queued behind the active rollout", "active", state.Active)
		return nil
	}
	if state.Active != id {
		log.Info("artifact is already live")
		return nil
	}
	return m.begin(ctx, app, id, Candidate{Artifact: s.Target, ScanEventID: ev.ID(), ChainID: chain}, state)
}

// begin creates the rollout (if this is not a redelivery), publishes the
// promotion and starts driving it.
func (m *Manager) begin(ctx context.Context, app policy.App, id string, c Candidate, state *AppState) error {
	now := m.now().UTC()
	r := &Rollout{
		ID: id, App: app.Name, Environment: app.Environment, Artifact: c.Artifact, ChainID: c.ChainID,
		ScanEventID: c.ScanEventID, Steps: app.Canary.Steps, Pause: app.Canary.Pause, Step: -1,
		Phase: PhaseProgressing, CreatedAt: now, UpdatedAt: now, Owner: m.opts.Owner, LeaseUntil: now.Add(m.opts.Lease),
	}
	if live := state.Live(); live != nil {
		r.Stable = live.Artifact
	}
	// A redelivered verdict finds the rollout created already: carry on with
	// the stored one.
	if err := m.store.saveRollout(ctx, r); err != nil && !errors.Is(err, errConflict) {
		return err
	}
	saved, err := m.store.Rollout(ctx, id)
	if err != nil {
		return err
	}
	if err := m.publishPromote(ctx, saved); err != nil {
		return err
	}
	m.metrics.rollouts.WithLabelValues("started").Inc()
	m.active.Store(app.Name, id)
	m.startDriver(id)
	return nil
}

func (m *Manager) publishPromote(ctx context.Context, r *Rollout) error {
	ev, err := events.NewPromoted(m.meta(r, "promote:"+r.ID, r.ScanEventID), events.Promotion{
		RolloutID: r.ID, App: r.App, Environment: r.Environment, ArtifactID: r.Artifact,
		Previous: r.Stable, Steps: r.Steps, ScanID: r.ScanEventID,
	})
	if err != nil {
		return err
	}
	_, err = m.bus.Publish(ctx, ev)
	return err
}

func (m *Manager) meta(r *Rollout, id, causedBy string) events.Meta {
	return events.Meta{ID: id, Source: Source, Time: m.now(), ChainID: r.ChainID, CausedBy: causedBy, App: r.App}
}

func refusal(err error) string {
	if errors.Is(err, events.ErrUnsigned) {
		return "unsigned"
	}
	return "bad_signature"
}
