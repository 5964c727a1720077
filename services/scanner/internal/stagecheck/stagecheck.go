// Package stagecheck is the scanner's work on a pre-production stage: when
// the deployer announces a candidate deployed to a stage (an
// environment.modified event), the candidate running there is scanned
// dynamically (dast) and the consumers' contracts are replayed against it
// (consumer); the findings are judged by the same gate and waivers as every
// other scan, and the signed verdict (target kind "stage") tells the
// deployer whether the candidate may go on. ZAP reports about a stage are
// accepted on a webhook too (zap.go).
package stagecheck

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/sarif"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/verdict"
	"github.com/rampartci/rampart/services/scanner/internal/stagecheck/consumer"
	"github.com/rampartci/rampart/services/scanner/internal/stagecheck/dast"
)

// Target kinds of the verdicts this package signs.
const (
	// TargetStage: the scanner's own checks of a candidate in a stage; a
	// pass lets the deployer promote it.
	TargetStage = "stage"
	// TargetDAST: a DAST report uploaded about a stage (ZAP); it can stop
	// a candidate, never promote one.
	TargetDAST = "dast"
)

// Consumer is the durable of stage deployments. A stage that cannot be
// reached is tried again (a deployment may still be settling) before its
// verdict is "error".
var Consumer = bus.ConsumerOptions{
	Durable:        "scanner-stages",
	FilterSubjects: []string{"rampart.stage.>"},
	MaxDeliver:     5,
	AckWait:        2 * time.Minute,
	Backoff:        []time.Duration{time.Second, 5 * time.Second, 15 * time.Second},
}

// Publisher publishes an event; *bus.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, ev cloudevents.Event) (*jetstream.PubAck, error)
}

// Options configures a Checker.
type Options struct {
	Key       ed25519.PrivateKey // signs verdicts; required
	Policy    *policy.Store      // the applications' stages; required
	Publisher Publisher          // required
	Gate      *gate.Policy       // nil: gate.Default()
	// HTTPClient reaches the stages (default: a plain client; each check
	// is bounded by the stage's timeout).
	HTTPClient *http.Client
	// Attempts is how many deliveries an unreachable stage is tried before
	// its verdict is "error" (default 3, below Consumer.MaxDeliver).
	Attempts uint64
	// ZAPToken is the bearer token of POST /hooks/zap; empty: 503.
	ZAPToken    string
	Source      string // default /rampart/scanner
	TopFindings int    // default 20
	Now         func() time.Time
	Logger      *slog.Logger
}

// Checker checks candidates in their stages.
type Checker struct {
	opts Options
	log  *slog.Logger
}

// New checks opts.
func New(opts Options) (*Checker, error) {
	switch {
	case len(opts.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("stage checks: no Ed25519 verdict key")
	case opts.Policy == nil:
		return nil, errors.New("stage checks: no policy")
	case opts.Publisher == nil:
		return nil, errors.New("stage checks: no publisher")
	}
	// ignore_unfixed is about vulnerabilities no fix is published for; a
	// stage's findings are the service's own, fixed in its own code, and
	// would never block under it.
	g := *cmp.Or(opts.Gate, gate.Default())
	g.IgnoreUnfixed = false
	opts.Gate = &g
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	opts.Attempts = cmp.Or(opts.Attempts, 3)
	if opts.Attempts >= uint64(Consumer.MaxDeliver) {
		return nil, fmt.Errorf("stage checks: %d attempts must be below the consumer's %d deliveries", opts.Attempts, Consumer.MaxDeliver)
	}
	opts.Source = cmp.Or(opts.Source, "/rampart/scanner")
	opts.TopFindings = cmp.Or(opts.TopFindings, 20)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{opts: opts, log: opts.Logger}, nil
}

// Handle checks the candidate of a stage-deployment event and publishes the
// stage verdict.
func (c *Checker) Handle(ctx context.Context, d bus.Delivery) error {
	if events.KindOf(d.Event.Type()) != events.KindStage {
		return nil
	}
	sd, err := events.StageDeploymentOf(d.Event)
	if err != nil {
		return bus.Poison(err)
	}
	log := c.log.With("app", sd.App, "stage", sd.Stage, "artifact", sd.ArtifactID)
	if sd.Failed != "" {
		log.Info("the stage never served the candidate; nothing to check", "reason", sd.Failed)
		return nil
	}
	app, ok := c.opts.Policy.Current().App(sd.App)
	if !ok {
		log.Warn("stage deployment of an application the policy does not name; not checked")
		return nil
	}
	stage, ok := app.Stage(sd.Stage)
	if !ok {
		log.Warn("stage deployment to a stage the policy does not name; not checked")
		return nil
	}
	stop := d.KeepAlive(ctx)
	defer stop()
	start := time.Now()
	findings, err := c.check(ctx, stage)
	var dec gate.Decision
	switch {
	case errors.Is(err, errStage) && d.Attempt < c.opts.Attempts:
		return err // retried with backoff
	case err != nil:
		dec = gate.ScanFailed(err, c.opts.Gate.Version)
	default:
		dec = c.opts.Gate.Evaluate(findings, c.opts.Now())
	}
	v := events.Scan{
		Target: sd.ArtifactID, TargetKind: TargetStage, Environment: sd.Environment,
		Outcome: string(dec.Outcome), Reason: verdict.Reason(append([]string{"checks in " + sd.Stage}, dec.Reasons...)),
		Counts: verdict.Counts(finding.Count(findings)), Findings: verdict.Top(findings, c.opts.TopFindings), PolicyVersion: dec.PolicyVersion,
	}
	meta := events.Meta{ID: verdict.EventID("stage-verdict", d.Event.ID()), Source: c.opts.Source, Time: c.opts.Now(),
		ChainID: events.ChainID(d.Event), CausedBy: d.Event.ID(), App: sd.App}
	ev, err := events.SignScan(meta, v, c.opts.Key)
	if err != nil {
		return bus.Poison(fmt.Errorf("sign stage verdict: %w", err))
	}
	if _, err := c.opts.Publisher.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish stage verdict: %w", err)
	}
	log.Info("stage verdict", "outcome", v.Outcome, "findings", len(findings), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// errStage wraps failures to reach the stage (retried); anything else is
// wrong with the checks themselves and fails at once.
var errStage = errors.New("stage unreachable")

// check runs the stage's checks against the candidate running there.
func (c *Checker) check(ctx context.Context, stage policy.Stage) ([]finding.Finding, error) {
	ctx, cancel := context.WithTimeout(ctx, stage.Checks.Timeout)
	defer cancel()
	var out []finding.Finding
	if d := stage.Checks.DAST; d != nil {
		var spec []byte
		if d.OpenAPI != "" {
			var err error
			if spec, err = c.fetchSpec(ctx, stage.URL, d.OpenAPI); err != nil {
				return nil, err
			}
		}
		rep, err := dast.Scan(ctx, c.opts.HTTPClient, dast.Target{BaseURL: stage.URL, Spec: spec, Paths: d.Paths})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errStage, err)
		}
		log, err := sarif.ParseBytes(rep.SARIF())
		if err != nil {
			return nil, fmt.Errorf("DAST report: %w", err)
		}
		out = append(out, log.Findings()...)
	}
	for _, file := range stage.Checks.Contracts {
		ct, err := consumer.Load(file)
		if err != nil {
			return nil, err // fail closed: a contract that cannot be read checks nothing
		}
		breaks, err := consumer.Replay(ctx, c.opts.HTTPClient, stage.URL, ct)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errStage, err)
		}
		for _, b := range breaks {
			out = append(out, ContractFinding(b))
		}
	}
	finding.Sort(out)
	return out, nil
}

// ContractFinding is a broken consumer contract as a finding: High, its id
// naming the consumer and its package the interaction, so that a waiver
// can accept one break of one consumer.
func ContractFinding(b consumer.Break) finding.Finding {
	return finding.Finding{ID: "rampart-contract/" + b.Consumer, Package: b.Interaction, Target: b.Request,
		Severity: finding.High, Title: "contract of " + b.String()}
}

// MaxSpec bounds the OpenAPI document read from a stage.
const MaxSpec = 4 << 20

// fetchSpec reads the candidate's OpenAPI document from the stage.
func (c *Checker) fetchSpec(ctx context.Context, base, where string) ([]byte, error) {
	u := where
	if strings.HasPrefix(where, "/") {
		u = strings.TrimRight(base, "/") + where
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("OpenAPI spec at %s: %w", u, err)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: OpenAPI spec: %w", errStage, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the stage serves no OpenAPI spec at %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxSpec+1))
	if err != nil {
		return nil, fmt.Errorf("%w: OpenAPI spec: %w", errStage, err)
	}
	if len(b) > MaxSpec {
		return nil, fmt.Errorf("the OpenAPI spec at %s is larger than %d bytes", u, MaxSpec)
	}
	return b, nil
}
