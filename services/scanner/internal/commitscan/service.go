package commitscan

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/contract"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/feedback"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/verdict"
)

// Publisher publishes an event on the bus; *bus.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, ev cloudevents.Event) (*jetstream.PubAck, error)
}

// Options configures a Service.
type Options struct {
	// Scanner scans commits (see NewScanner). Required.
	Scanner *Scanner
	// Specs is the live-spec store the Scanner diffs against; Service
	// updates it when a commit to a branch passes. Usually the same Store as
	// ScannerOptions.Specs; nil: the live spec is never updated.
	Specs contract.Store
	// Key signs verdicts (the scanner's Ed25519 verdict key). Required.
	Key ed25519.PrivateKey
	// Publisher publishes verdicts. Required.
	Publisher Publisher
	// Gate is the policy that decides pass or blocked; nil: gate.Default().
	Gate *gate.Policy
	// Source is the CloudEvents source of verdicts; default /rampart/scanner.
	Source string
	// Environment names where source verdicts apply; default "source".
	Environment string
	// TopFindings bounds the findings a verdict lists; default 20.
	TopFindings int
	// GitHub, when set, reports each verdict as a commit status and (for a
	// blocked pull request) a comment.
	GitHub *feedback.Options
	// GitHubToken is the token for GitHub; it is read when the Service is
	// made. Required with GitHub unless GitHub.Token is set.
	GitHubToken policy.Secret
	// SARIFToken is the bearer token /hooks/sarif requires. Unset: the hook
	// answers 503, it never runs open.
	SARIFToken policy.Secret
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock waivers are judged by; default time.Now.
	Now func() time.Time
}

// Service handles commit events and SARIF uploads.
type Service struct {
	opts       Options
	github     *feedback.GitHub // nil: no feedback
	sarifToken string           // empty: the hook is disabled
	logger     *slog.Logger
}

// New checks opts and resolves its secrets.
func New(opts Options) (*Service, error) {
	switch {
	case opts.Scanner == nil:
		return nil, errors.New("source service: no scanner")
	case len(opts.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("source service: no Ed25519 verdict key")
	case opts.Publisher == nil:
		return nil, errors.New("source service: no publisher")
	}
	opts.Gate = cmp.Or(opts.Gate, gate.Default())
	opts.Source = cmp.Or(opts.Source, "/rampart/scanner")
	opts.Environment = cmp.Or(opts.Environment, "source")
	opts.TopFindings = cmp.Or(opts.TopFindings, 20)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{opts: opts, logger: opts.Logger}
	if opts.GitHub != nil {
		gh := *opts.GitHub
		if gh.Token == "" {
			tok, err := opts.GitHubToken.Resolve()
			if err != nil {
				return nil, fmt.Errorf("source service: GitHub token: %w", err)
			}
			gh.Token = tok
		}
		var err error
		if s.github, err = feedback.New(gh, opts.Logger); err != nil {
			return nil, fmt.Errorf("source service: %w", err)
		}
	}
	if !opts.SARIFToken.IsZero() {
		tok, err := opts.SARIFToken.Resolve()
		if err != nil {
			return nil, fmt.Errorf("source service: SARIF hook token: %w", err)
		}
		s.sarifToken = tok
	}
	return s, nil
}

// Handle scans the commit of a commit event (change.merged or
// change.created), publishes the signed source verdict and reports it on
// GitHub. A scan that fails publishes an "error" verdict, which blocks; an
// event that is not a commit is poison. Publishing failures are returned so
// the delivery is retried; the verdict's id derives from the commit event's,
// so a retry never publishes a second verdict.
func (s *Service) Handle(ctx context.Context, d bus.Delivery) error {
	c, err := events.CommitOf(d.Event)
	if err != nil {
		return bus.Poison(fmt.Errorf("commit event %s: %w", d.Event.ID(), err))
	}
	log := s.logger.With("repository", c.Repository, "sha", c.SHA, "event", d.Event.ID(), "attempt", d.Attempt)
	meta := events.Meta{ID: verdict.EventID("source-verdict", d.Event.ID()), Source: s.opts.Source,
		ChainID: events.ChainID(d.Event), CausedBy: d.Event.ID(), App: events.App(d.Event)}

	stop := d.KeepAlive(ctx) // a clone of a large repository can outlast AckWait
	res, scanErr := s.opts.Scanner.ScanCommit(ctx, c)
	stop()
	if scanErr != nil && ctx.Err() != nil {
		return fmt.Errorf("scan %s@%s: %w", c.Repository, c.SHA, ctx.Err()) // shutting down: retry later
	}
	var dec gate.Decision
	if scanErr != nil {
		log.Warn("source scan failed", "err", scanErr)
		dec = gate.ScanFailed(scanErr, s.opts.Gate.Version)
	} else {
		dec = s.opts.Gate.Evaluate(res.Findings, s.opts.Now())
	}
	scan := s.verdict(c.SHA, dec, res, scanErr == nil)
	ev, err := events.SignScan(meta, scan, s.opts.Key)
	if err != nil {
		return bus.Poison(fmt.Errorf("sign source verdict: %w", err))
	}
	if _, err := s.opts.Publisher.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish source verdict of %s@%s: %w", c.Repository, c.SHA, err)
	}
	log.Info("source scanned", "outcome", scan.Outcome, "critical", res.Counts.Critical, "high", res.Counts.High,
		"breaks", len(res.Breaks), "duration", res.Duration)

	// The passing commit of a branch is the new live release's spec. A pull
	// request's head is not a release.
	if dec.Outcome == gate.Pass && res.Spec != nil && c.PullRequest == 0 && s.opts.Specs != nil {
		if err := s.opts.Specs.SetLive(ctx, *res.Spec); err != nil {
			return fmt.Errorf("record live spec: %w", err)
		}
	}
	s.feedback(ctx, log, c, dec, res.Notes)
	return nil
}

// verdict is the signed event's payload.
func (s *Service) verdict(sha string, dec gate.Decision, res Result, scanned bool) events.Scan {
	v := events.Scan{
		Target:        sha,
		TargetKind:    "source",
		Environment:   s.opts.Environment,
		Outcome:       string(dec.Outcome),
		Reason:        verdict.Reason(dec.Reasons),
		PolicyVersion: dec.PolicyVersion,
		Waivers:       dec.WaiverRecords(),
	}
	if scanned && len(res.Notes) > 0 {
		// After the gate's reasons, never cut by their bound: what the scan
		// did not cover is part of the verdict.
		v.Reason += "; " + strings.Join(res.Notes, "; ")
	}
	if scanned {
		v.Counts = verdict.Counts(res.Counts)
		v.Findings = verdict.Top(res.Findings, s.opts.TopFindings)
		if !res.DBVersion.IsZero() {
			v.DBVersion = res.DBVersion.String()
		}
	}
	return v
}

// feedback reports the decision on GitHub. It is best effort: the verdict on
// the bus is what gates promotion, so a GitHub outage is logged, not retried
// by redelivering the commit (which would scan it again).
func (s *Service) feedback(ctx context.Context, log *slog.Logger, c events.Commit, dec gate.Decision, notes []string) {
	if s.github == nil {
		return
	}
	r := feedback.Report{Repository: c.Repository, SHA: c.SHA, PullRequest: c.PullRequest,
		Blocking: dec.Blocking, Reasons: dec.Reasons, Notes: notes}
	switch dec.Outcome {
	case gate.Pass:
		r.State, r.Description = feedback.StateSuccess, "passed: "+summary(dec)
	case gate.Blocked:
		r.State, r.Description = feedback.StateFailure, fmt.Sprintf("blocked: %s", summary(dec))
	default:
		r.State, r.Description = feedback.StateError, "scan did not complete"
	}
	err := s.github.Send(ctx, r)
	switch {
	case errors.Is(err, feedback.ErrNotGitHub):
		log.Debug("no GitHub feedback", "err", err)
	case err != nil:
		log.Warn("GitHub feedback failed", "err", err)
	}
}

// summary is e.g. "2 CRITICAL, 1 HIGH blocking" or "no blocking findings".
func summary(dec gate.Decision) string {
	if len(dec.Blocking) == 0 {
		if n := len(dec.Waived); n > 0 {
			return fmt.Sprintf("no blocking findings (%d waived)", n)
		}
		return "no blocking findings"
	}
	c := finding.Count(dec.Blocking)
	var parts []string
	for _, p := range []struct {
		n   int
		sev string
	}{{c.Critical, "CRITICAL"}, {c.High, "HIGH"}, {c.Medium, "MEDIUM"}, {c.Low, "LOW"}, {c.Unknown, "UNKNOWN"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.sev))
		}
	}
	return strings.Join(parts, ", ") + " blocking; first: " + dec.Blocking[0].ID + " in " + dec.Blocking[0].Package
}
