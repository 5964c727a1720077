// Package imagescan is the scanner's image work: a pushed image is pulled and
// scanned (internal/scan), judged (pkg/policy/gate), its SBOM stored, and a
// signed verdict published; the verdict of a digest already scanned against
// the same vulnerability DB is served from a cache without calling Trivy.
// When the DB changes, the stored SBOMs of live and in-flight releases are
// re-scanned (no image is pulled again) and a new Critical/High finding
// becomes an anomaly (live) or a blocked verdict (in flight).
package imagescan

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
)

// Scanner runs Trivy; *scan.Scanner is one. Tests wrap it to count calls.
type Scanner interface {
	ScanImage(ctx context.Context, ref string) (*scan.Result, error)
	ScanSBOM(ctx context.Context, sbom []byte) (*scan.Result, error)
}

// DB is the vulnerability DB as the pipeline sees it; *vulndb.DB is one.
type DB interface {
	Version() vulndb.Version
	Reload() (before, after vulndb.Version, err error)
}

// CommitHandler scans a commit at source (internal/commitscan's *Service fits).
// It has the bus.Handler contract: nil acks, bus.Poison terminates, any
// other error retries.
type CommitHandler interface {
	Handle(ctx context.Context, d bus.Delivery) error
}

// Consumer is the scanner's durable consumer: pushed artifacts to scan, and
// commits for the source scanner. A pull failure is retried with backoff
// until Options.PullAttempts deliveries have failed, which must stay below
// MaxDeliver so the error verdict goes out before the message is given up.
var Consumer = bus.ConsumerOptions{
	Durable:        "scanner",
	FilterSubjects: []string{"rampart.commit.>", "rampart.artifact.>"},
	MaxDeliver:     6,
	AckWait:        30 * time.Second,
	Backoff:        []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second},
}

// TargetsConsumer follows what is live and what is being promoted, for the
// zero-day re-scan. It is its own durable so that a queue of image scans
// never delays it.
var TargetsConsumer = bus.ConsumerOptions{
	Durable:        "scanner-targets",
	FilterSubjects: []string{"rampart.promote.>", "rampart.release.>", "rampart.rollback.>"},
}

// Options configures a Pipeline.
type Options struct {
	// Key signs verdicts (required).
	Key ed25519.PrivateKey
	// Policy is rampart.yaml: it gives the application and environment of
	// an image. Nil: no application, environment "default".
	Policy *policy.Store
	// Gate judges findings; nil is gate.Default() (block Critical and High).
	Gate *gate.Policy
	// Commits scans commits; nil acks them with a log line (source scans
	// are not wired yet; no verdict is made up).
	Commits CommitHandler
	// PullAttempts is how many deliveries an image that cannot be pulled
	// is tried before its verdict is "error" (default 3).
	PullAttempts int
	// TopFindings is how many findings a verdict carries (default 10).
	TopFindings int
	// AckWait and RetryBackoff override Consumer's (tests shorten them).
	AckWait      time.Duration
	RetryBackoff []time.Duration
	// DBDir is the directory holding trivy.db and metadata.json, watched
	// for a new DB by WatchDB.
	DBDir string
	// Source is the CloudEvents source (default /rampart/scanner).
	Source     string
	Registerer prometheus.Registerer
	// Now is the clock for waiver expiry and event times (default time.Now).
	Now func() time.Time
	// Replicas of the scanner's buckets (0 or 1 embedded, 3 in a cluster).
	Replicas int
}

// Pipeline consumes artifact, commit and release events.
type Pipeline struct {
	bus     *bus.Bus
	scanner Scanner
	db      DB
	opts    Options
	log     *slog.Logger
	metrics *metrics
	signer  *attest.Signer // verdict attestations, with Key

	sboms   *sbomStore
	cache   *verdictCache
	targets *targetStore

	consumer, tracker *bus.Consumer

	rescanMu sync.Mutex // one re-scan at a time
	dbFiles  fileState  // guarded by rescanMu
}

// New checks the options; Start creates the buckets and consumers.
func New(b *bus.Bus, sc Scanner, db DB, opts Options, logger *slog.Logger) (*Pipeline, error) {
	switch {
	case b == nil || sc == nil || db == nil:
		return nil, errors.New("imagescan: bus, scanner and DB are required")
	case len(opts.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("imagescan: a verdict signing key is required")
	}
	if opts.Gate == nil {
		opts.Gate = gate.Default()
	}
	if opts.PullAttempts <= 0 {
		opts.PullAttempts = 3
	}
	if opts.PullAttempts >= Consumer.MaxDeliver {
		return nil, fmt.Errorf("imagescan: pull attempts %d must be below the consumer's %d deliveries", opts.PullAttempts, Consumer.MaxDeliver)
	}
	if opts.TopFindings <= 0 {
		opts.TopFindings = 10
	}
	if opts.Source == "" {
		opts.Source = "/rampart/scanner"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	signer, err := attest.NewSigner(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("imagescan: %w", err)
	}
	return &Pipeline{bus: b, scanner: sc, db: db, opts: opts, log: logger, metrics: m, signer: signer}, nil
}

// consumerOptions is Consumer with the configured overrides.
func (p *Pipeline) consumerOptions() bus.ConsumerOptions {
	c := Consumer
	if p.opts.AckWait > 0 {
		c.AckWait = p.opts.AckWait
	}
	if len(p.opts.RetryBackoff) > 0 {
		c.Backoff = p.opts.RetryBackoff
	}
	return c
}

// Start opens the stores and starts both consumers. The consumers live
// until Stop, not until ctx ends.
func (p *Pipeline) Start(ctx context.Context) error {
	var err error
	if p.sboms, err = openSBOMStore(ctx, p.bus, p.opts.Replicas); err != nil {
		return err
	}
	if p.cache, err = openVerdictCache(ctx, p.bus, p.opts.Replicas); err != nil {
		return err
	}
	if p.targets, err = openTargetStore(ctx, p.bus, p.opts.Replicas); err != nil {
		return err
	}
	if p.opts.DBDir != "" {
		p.dbFiles = statDB(p.opts.DBDir)
	}
	runCtx := context.WithoutCancel(ctx)
	if p.tracker, err = p.bus.Consume(runCtx, TargetsConsumer, p.Track); err != nil {
		return err
	}
	if p.consumer, err = p.bus.Consume(runCtx, p.consumerOptions(), p.Handle); err != nil {
		p.tracker.Stop()
		return err
	}
	return nil
}

// Stop drains both consumers: the scan in hand finishes and is acked.
func (p *Pipeline) Stop(ctx context.Context) error {
	var errs []error
	for _, c := range []*bus.Consumer{p.consumer, p.tracker} {
		if c != nil {
			errs = append(errs, c.Drain(ctx))
		}
	}
	return errors.Join(errs...)
}

// Ready reports whether the consumers are running.
func (p *Pipeline) Ready() error {
	if p.consumer == nil || p.tracker == nil {
		return errors.New("starting")
	}
	return nil
}

// Handle is the scanner consumer's handler: artifacts are scanned, commits
// go to the commit handler.
func (p *Pipeline) Handle(ctx context.Context, d bus.Delivery) error {
	switch events.KindOf(d.Event.Type()) {
	case events.KindArtifact:
		return p.handleArtifact(ctx, d)
	case events.KindCommit:
		if p.opts.Commits != nil {
			return p.opts.Commits.Handle(ctx, d)
		}
		p.log.Info("commit received; source scans are not enabled, acknowledging without a verdict", "event", d.Event.ID())
		return nil
	}
	return nil
}

// appFor names the application and environment of an image repository
// (host/repository) from rampart.yaml.
func (p *Pipeline) appFor(repositoryURL string) (app, env string) {
	env = "default"
	if p.opts.Policy == nil {
		return "", env
	}
	if a, ok := p.opts.Policy.Current().AppForImage(repositoryURL); ok {
		app = a.Name
		if a.Environment != "" {
			env = a.Environment
		}
	}
	return app, env
}

// eventID derives an event id from the parts that make the event what it
// is, so a redelivered input republishes the same id (and JetStream drops
// the repeat).
func eventID(parts ...string) string {
	return uuid.NewSHA1(idNamespace, []byte(strings.Join(parts, "\x00"))).String()
}

// idNamespace is the UUIDv5 namespace of ids the pipeline derives.
var idNamespace = uuid.MustParse("0b9e5a54-6f43-5c7e-8f1d-4a2c3e6b9d10")

// publish publishes ev, saying what it was.
func (p *Pipeline) publish(ctx context.Context, what string, ev cloudevents.Event) error {
	if _, err := p.bus.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish %s: %w", what, err)
	}
	return nil
}
