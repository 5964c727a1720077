package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/notifier/internal/incident"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/notify/pagerduty"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// rollback reports, pages, posts and announces one rollback. The steps are
// recorded on the rollout's incident as they succeed, so a redelivery (after
// a failure, or of a duplicate rollback) does only what is left, and a
// rollout whose incident is complete is acknowledged without a second page.
func (n *Notifier) rollback(ctx context.Context, ev cloudevents.Event, last bool, inProgress func()) (err error) {
	rb, err := events.RollbackOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read rollback: %w", err))
	}
	log := n.log.With("app", rb.App, "environment", rb.Environment, "rollout", rb.RolloutID, "event", ev.ID())

	claim, err := n.claim(ctx, rb.RolloutID, ev.ID(), inProgress)
	switch {
	case errors.Is(err, incident.ErrCompleted):
		n.metrics.duplicates.Inc()
		log.Info("rollout already notified; not paging again")
		return nil
	case err != nil:
		return err // held elsewhere, or the bucket is unreachable: retry later
	}
	// Let go of the claim unless every step is done, recording why, so that
	// the next delivery can pick up at once.
	defer func() {
		if err == nil {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := claim.Release(rctx, err.Error()); rerr != nil && !errors.Is(rerr, incident.ErrLost) {
			log.Warn("releasing the incident claim", "err", rerr)
		}
	}()

	rd, err := n.reportFor(ctx, log, claim, ev, last, inProgress)
	if err != nil {
		return err
	}

	r := n.routes(rb.App)
	if !r.known {
		log.Warn("app has no notification routes in the policy; the rollback is reported but nobody is paged")
	}
	var errs []error
	pd, err := n.pagerDuty(r)
	errs = append(errs, err)
	if pd != nil && claim.Incident.PagedAt.IsZero() {
		err := n.page(ctx, log, claim, pd, rb, rd)
		if errors.Is(err, incident.ErrLost) {
			return err // another instance took over: it does the rest
		}
		errs = append(errs, err)
	}
	sl, err := n.slack(r)
	errs = append(errs, err)
	if sl != nil && claim.Incident.PostedAt.IsZero() {
		onCall := "no PagerDuty route"
		switch {
		case !claim.Incident.PagedAt.IsZero():
			onCall = "paged on PagerDuty, dedup key " + slack.Code(claim.Incident.DedupKey)
		case pd != nil:
			onCall = "*the PagerDuty page failed*: page on-call by hand"
		}
		err := n.deliver(ctx, log, notify.ChannelSlack, events.KindRollback, func(ctx context.Context) error {
			return sl.Post(ctx, rollbackMessage(rd.report, onCall))
		})
		if err == nil {
			err = claim.Update(ctx, func(i *incident.Incident) { i.PostedAt = n.cfg.Now().UTC() })
		}
		if errors.Is(err, incident.ErrLost) {
			return err
		}
		errs = append(errs, err)
	}
	if !claim.Incident.PagedAt.IsZero() && claim.Incident.PublishedAt.IsZero() {
		errs = append(errs, n.publishPage(ctx, log, claim, ev, rb))
	}
	if err := outcome(errs); err != nil {
		return err
	}
	if err := claim.Complete(ctx); err != nil {
		return err
	}
	log.Info("rollback notified", "paged", !claim.Incident.PagedAt.IsZero(), "posted", !claim.Incident.PostedAt.IsZero())
	return nil
}

// claim takes the rollout's incident. While another instance holds it (a
// duplicate rollback on another replica), it waits for that one to finish,
// up to the ledger wait, rather than retry the message blindly.
func (n *Notifier) claim(ctx context.Context, rolloutID, eventID string, inProgress func()) (*incident.Claim, error) {
	deadline := time.Now().Add(n.cfg.LedgerWait)
	beat := time.Now()
	for {
		claim, err := n.cfg.Incidents.Claim(ctx, rolloutID, eventID, n.cfg.Holder)
		if !errors.Is(err, incident.ErrHeld) || time.Now().After(deadline) {
			return claim, err
		}
		if time.Since(beat) >= n.cfg.ProgressEvery {
			inProgress()
			beat = time.Now()
		}
		t := time.NewTimer(n.cfg.LedgerPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for incident %s: %w", rolloutID, ctx.Err())
		case <-t.C:
		}
	}
}

// rendered is a stored report and its model.
type rendered struct {
	*report.Rendered
	report *report.Report
}

// reportFor builds and stores the rollout's report, or reads the stored one
// when an earlier delivery did that.
func (n *Notifier) reportFor(ctx context.Context, log *slog.Logger, claim *incident.Claim, ev cloudevents.Event, last bool, inProgress func()) (*rendered, error) {
	if !claim.Incident.ReportedAt.IsZero() {
		rd, err := n.cfg.Reports.Get(ctx, claim.Incident.RolloutID)
		if err == nil {
			r, perr := report.Parse(rd.JSON)
			if perr == nil {
				return &rendered{Rendered: rd, report: r}, nil
			}
			err = perr
		}
		log.Warn("stored report unreadable; building it again", "err", err)
	}
	start := time.Now()
	in := report.Input{Rollback: ev, Now: n.cfg.Now()}
	if chainID := events.ChainID(ev); chainID != "" {
		chain, err := n.waitForEvent(ctx, chainID, ev.ID(), last, inProgress)
		if err != nil {
			return nil, err
		}
		in.Chain = chain
	}
	r, err := report.Build(in)
	if err != nil {
		return nil, bus.Poison(err)
	}
	if !r.Ledger.Complete {
		log.Warn("report built without the rollback in the ledger", "note", r.Ledger.Note)
	}
	rd, err := report.Render(r)
	if err != nil {
		return nil, err
	}
	if err := n.cfg.Reports.Put(ctx, rd); err != nil {
		return nil, err
	}
	if err := claim.Update(ctx, func(i *incident.Incident) { i.ReportedAt = n.cfg.Now().UTC() }); err != nil {
		return nil, err
	}
	n.metrics.reportBuild.Observe(time.Since(start).Seconds())
	log.Info("rollback report stored", "bucket", report.Bucket, "timeline", len(r.Timeline), "ledger_complete", r.Ledger.Complete)
	return &rendered{Rendered: rd, report: r}, nil
}

// page triggers the PagerDuty alert of the rollout and records it.
func (n *Notifier) page(ctx context.Context, log *slog.Logger, claim *incident.Claim, pd *pagerduty.Notifier, rb events.Rollback, rd *rendered) error {
	dedup := pagerduty.DedupKey(rb.RolloutID)
	alert := pagerduty.Alert{
		DedupKey:  dedup,
		Summary:   pageSummary(rd.report),
		Source:    rb.App + " (" + rb.Environment + ")",
		Component: rb.App,
		Group:     rb.Environment,
		Class:     rb.Trigger.Rule,
		Timestamp: rd.report.RolledBackAt,
		Details:   json.RawMessage(rd.JSON),
	}
	err := n.deliver(ctx, log, notify.ChannelPagerDuty, events.KindRollback, func(ctx context.Context) error {
		_, err := pd.Trigger(ctx, alert)
		return err
	})
	if err != nil {
		return err
	}
	return claim.Update(ctx, func(i *incident.Incident) {
		i.PagedAt, i.DedupKey, i.TicketURI = n.cfg.Now().UTC(), dedup, pd.TicketURI(dedup)
	})
}

// PageEventID is the id of the page event for a rollout: fixed, so that a
// retried publish is dropped by JetStream's duplicate window.
func PageEventID(rolloutID string) string { return "notifier-page-" + rolloutID }

// publishPage announces the page on the bus, in the release's chain.
func (n *Notifier) publishPage(ctx context.Context, log *slog.Logger, claim *incident.Claim, ev cloudevents.Event, rb events.Rollback) error {
	inc := claim.Incident
	channels := []string{notify.ChannelPagerDuty}
	if !inc.PostedAt.IsZero() {
		channels = append(channels, notify.ChannelSlack)
	}
	page, err := events.NewPage(events.Meta{
		ID:       PageEventID(rb.RolloutID),
		Source:   Source,
		Time:     inc.PagedAt,
		ChainID:  events.ChainID(ev),
		CausedBy: ev.ID(),
		App:      rb.App,
	}, events.Page{
		App:         rb.App,
		Environment: rb.Environment,
		TicketURI:   inc.TicketURI,
		DedupKey:    inc.DedupKey,
		Description: fmt.Sprintf("rollback of %s in %s: %s", rb.App, rb.Environment, report.TriggerText(rb.Trigger.Rule, rb.Trigger.Origin, rb.Trigger.Observed, rb.Trigger.Threshold)),
		RolloutID:   rb.RolloutID,
		ArtifactID:  rb.From,
		Channels:    channels,
	})
	if err != nil {
		return &notify.Error{Channel: notify.ChannelEvent, Err: fmt.Errorf("build page event: %w", err)}
	}
	err = n.deliver(ctx, log, notify.ChannelEvent, events.KindRollback, func(ctx context.Context) error {
		_, err := n.cfg.Publisher.Publish(ctx, page)
		if err != nil {
			return &notify.Error{Channel: notify.ChannelEvent, Retryable: true, Err: err}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return claim.Update(ctx, func(i *incident.Incident) {
		i.PublishedAt, i.PageEventID = n.cfg.Now().UTC(), page.ID()
	})
}
