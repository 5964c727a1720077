package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/notify/pagerduty"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// anomaly posts a Slack heads-up for an anomaly against a live canary (the
// rollback that follows is what pages) and pages for one against the live
// release; anomalies against nothing live are only recorded (by the ledger).
func (n *Notifier) anomaly(ctx context.Context, ev cloudevents.Event) error {
	a, err := events.AnomalyOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read anomaly: %w", err))
	}
	if a.Target == events.TargetNone {
		return nil
	}
	log := n.log.With("app", a.App, "environment", a.Environment, "rule", a.Rule, "event", ev.ID())
	if a.Target == events.TargetRelease {
		// A finding in the live release (a new CVE in its digest) pages
		// whether or not the deployer could roll back: with no clean
		// release to return to, traffic stays and only a human can act.
		r := n.routes(a.App)
		return n.toChannels(ctx, log, r, []string{notify.ChannelPagerDuty, notify.ChannelSlack}, events.KindAnomaly, anomalyMessage(a), pagerduty.Alert{
			DedupKey:  "live:" + a.App + ":" + a.ArtifactID,
			Summary:   fmt.Sprintf("Live release of %s in %s: %s", a.App, a.Environment, a.Description),
			Source:    a.App + " (" + a.Environment + ")",
			Component: a.App,
			Group:     a.Environment,
			Class:     a.Rule,
			Timestamp: ev.Time(),
			Severity:  "critical",
			Details:   a,
		})
	}
	sl, err := n.slack(n.routes(a.App))
	if sl == nil || err != nil {
		return outcome([]error{err})
	}
	return outcome([]error{n.deliver(ctx, log, notify.ChannelSlack, events.KindAnomaly, func(ctx context.Context) error {
		return sl.Post(ctx, anomalyMessage(a))
	})})
}

// scan tells the app's ScanBlocked channels about a blocked scan; passing
// scans and scan errors are not news.
func (n *Notifier) scan(ctx context.Context, ev cloudevents.Event) error {
	s, err := events.ScanOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read scan: %w", err))
	}
	if s.Outcome != events.OutcomeBlocked {
		return nil
	}
	app := n.appOfScan(ev, s)
	r := n.routes(app)
	log := n.log.With("app", app, "environment", s.Environment, "target", s.Target, "event", ev.ID())
	return n.toChannels(ctx, log, r, r.app.Notify.ScanBlocked, events.KindScan, scanBlockedMessage(app, s), pagerduty.Alert{
		DedupKey:  ev.ID(),
		Summary:   fmt.Sprintf("Scan blocked %s of %s in %s: %s", s.TargetKind, report.ShortArtifact(s.Target), s.Environment, report.FormatCounts(s.Counts)),
		Source:    app + " (" + s.Environment + ")",
		Component: app,
		Group:     s.Environment,
		Class:     "scan-blocked",
		Timestamp: ev.Time(),
		Severity:  "warning",
		Details:   s,
	})
}

// appOfScan is the scan event's app, or the app whose image was scanned.
func (n *Notifier) appOfScan(ev cloudevents.Event, s events.Scan) string {
	if app := events.App(ev); app != "" {
		return app
	}
	if o, err := events.ParseOCI(s.Target); err == nil && n.cfg.Policy != nil && n.cfg.Policy.Current() != nil {
		if a, ok := n.cfg.Policy.Current().AppForImage(o.RepositoryURL); ok {
			return a.Name
		}
	}
	return ""
}

// release tells the app's Released channels about a completed release.
func (n *Notifier) release(ctx context.Context, ev cloudevents.Event) error {
	rel, err := events.ReleaseOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read release: %w", err))
	}
	r := n.routes(rel.App)
	log := n.log.With("app", rel.App, "environment", rel.Environment, "rollout", rel.RolloutID, "event", ev.ID())
	return n.toChannels(ctx, log, r, r.app.Notify.Released, events.KindRelease, releaseMessage(rel), pagerduty.Alert{
		DedupKey:  ev.ID(),
		Summary:   fmt.Sprintf("Released %s to %s: %s", rel.App, rel.Environment, report.ShortArtifact(rel.ArtifactID)),
		Source:    rel.App + " (" + rel.Environment + ")",
		Component: rel.App,
		Group:     rel.Environment,
		Class:     "release",
		Timestamp: ev.Time(),
		Severity:  "info",
		Details:   rel,
	})
}

// toChannels sends one piece of news to each listed channel the app has.
// The policy defaults the lists to Slack when Slack is configured.
func (n *Notifier) toChannels(ctx context.Context, log *slog.Logger, r routes, channels []string, about string, msg slack.Message, alert pagerduty.Alert) error {
	var errs []error
	if slices.Contains(channels, policy.ChannelSlack) {
		sl, err := n.slack(r)
		errs = append(errs, err)
		if sl != nil {
			errs = append(errs, n.deliver(ctx, log, notify.ChannelSlack, about, func(ctx context.Context) error { return sl.Post(ctx, msg) }))
		}
	}
	if slices.Contains(channels, policy.ChannelPagerDuty) {
		pd, err := n.pagerDuty(r)
		errs = append(errs, err)
		if pd != nil {
			errs = append(errs, n.deliver(ctx, log, notify.ChannelPagerDuty, about, func(ctx context.Context) error {
				_, err := pd.Trigger(ctx, alert)
				return err
			}))
		}
	}
	return outcome(errs)
}
