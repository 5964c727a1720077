package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
)

// anomaly posts a Slack heads-up for an anomaly against a live canary (the
// rollback that follows is what pages) and pages for one against the live
// release; anomalies against nothing live are only recorded (by the ledger).
func (n *Dispatcher) anomaly(ctx context.Context, ev cloudevents.Event) error {
	a, err := events.AnomalyOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read anomaly: %w", err))
	}
	if a.Target == events.TargetNone {
		return nil
	}
	if a.Target == events.TargetLedger {
		return n.ledgerAnomaly(ctx, ev, a)
	}
	log := n.log.With("app", a.App, "environment", a.Environment, "rule", a.Rule, "event", ev.ID())
	r := n.routes(a.App)
	note := &notify.Notification{
		About: events.KindAnomaly, Summary: fmt.Sprintf("Live release of %s in %s: %s", a.App, a.Environment, a.Description),
		Source: a.App + " (" + a.Environment + ")", Component: a.App, Group: a.Environment, Class: a.Rule,
		Time: ev.Time(), Details: a, Message: anomalyMessage(a),
	}
	if a.Target == events.TargetRelease {
		// A finding in the live release (a new CVE in its digest) pages
		// whether or not the deployer could roll back: with no clean
		// release to return to, traffic stays and only a human can act.
		note.Key, note.Severity = "live:"+a.App+":"+a.ArtifactID, "critical"
		return n.toChannels(ctx, log, r, []string{notify.ChannelPagerDuty, notify.ChannelSlack}, note)
	}
	return n.toChannels(ctx, log, r, []string{notify.ChannelSlack}, note)
}

// ledgerAnomaly pages about an anomaly in the ledger itself (a message in
// its stream that it did not write, a new log accepted by the operator): the
// ledger keeps every application's trail, so every application's PagerDuty
// and Slack hear of it, each distinct channel once.
func (n *Dispatcher) ledgerAnomaly(ctx context.Context, ev cloudevents.Event, a events.Anomaly) error {
	log := n.log.With("rule", a.Rule, "event", ev.ID())
	if n.cfg.Policy == nil || n.cfg.Policy.Current() == nil {
		log.Warn("ledger anomaly, but no application has channels to tell", "description", a.Description)
		return nil
	}
	note := &notify.Notification{
		About: events.KindAnomaly, Key: "ledger:" + ev.ID(), Severity: "critical",
		Summary: "Rampart ledger: " + a.Description,
		Source:  "rampart ledger (" + a.Environment + ")", Component: "ledger", Group: a.Environment, Class: a.Rule,
		Time: ev.Time(), Details: a, Message: anomalyMessage(a),
	}
	seen := map[string]bool{}
	var errs []error
	for _, app := range n.cfg.Policy.Current().Apps {
		r := routes{app: app, known: true}
		if pd := app.Notify.PagerDuty; pd != nil {
			k := "pagerduty " + pd.RoutingKey.String() + " " + pd.URL
			if seen[k] {
				r.app.Notify.PagerDuty = nil
			}
			seen[k] = true
		}
		if sl := app.Notify.Slack; sl != nil {
			k := "slack " + sl.Webhook.String()
			if seen[k] {
				r.app.Notify.Slack = nil
			}
			seen[k] = true
		}
		if err := n.toChannels(ctx, log, r, []string{notify.ChannelPagerDuty, notify.ChannelSlack}, note); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// scan tells the app's ScanBlocked channels about a blocked scan; passing
// scans and scan errors are not news.
func (n *Dispatcher) scan(ctx context.Context, ev cloudevents.Event) error {
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
	return n.toChannels(ctx, log, r, r.app.Notify.ScanBlocked, &notify.Notification{
		About:     events.KindScan,
		Key:       ev.ID(),
		Summary:   fmt.Sprintf("Scan blocked %s of %s in %s: %s", s.TargetKind, events.ShortArtifact(s.Target), s.Environment, events.FormatCounts(s.Counts)),
		Source:    app + " (" + s.Environment + ")",
		Component: app,
		Group:     s.Environment,
		Class:     "scan-blocked",
		Time:      ev.Time(),
		Severity:  "warning",
		Details:   s,
		Message:   scanBlockedMessage(app, s),
	})
}

// appOfScan is the scan event's app, or the app whose image was scanned.
func (n *Dispatcher) appOfScan(ev cloudevents.Event, s events.Scan) string {
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
func (n *Dispatcher) release(ctx context.Context, ev cloudevents.Event) error {
	rel, err := events.ReleaseOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read release: %w", err))
	}
	r := n.routes(rel.App)
	log := n.log.With("app", rel.App, "environment", rel.Environment, "rollout", rel.RolloutID, "event", ev.ID())
	return n.toChannels(ctx, log, r, r.app.Notify.Released, &notify.Notification{
		About:     events.KindRelease,
		Key:       ev.ID(),
		Summary:   fmt.Sprintf("Released %s to %s: %s", rel.App, rel.Environment, events.ShortArtifact(rel.ArtifactID)),
		Source:    rel.App + " (" + rel.Environment + ")",
		Component: rel.App,
		Group:     rel.Environment,
		Class:     "release",
		Time:      ev.Time(),
		Severity:  "info",
		Details:   rel,
		Message:   releaseMessage(rel),
	})
}

// toChannels sends one piece of news to each of the wanted channels the
// app has, Slack first. The policy defaults the lists to Slack when Slack is
// configured.
func (n *Dispatcher) toChannels(ctx context.Context, log *slog.Logger, r routes, wanted []string, note *notify.Notification) error {
	chans, errs := n.channels(r, wanted...)
	for _, name := range []string{notify.ChannelSlack, notify.ChannelPagerDuty} {
		if ch := chans[name]; ch != nil {
			errs = append(errs, n.send(ctx, log, name, ch, note))
		}
	}
	return outcome(errs)
}
