package dispatch

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
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// rollback pages, announces, reports and posts one rollback, in that
// order: on-call hears of it at once, from the rollback event alone, and the
// report (which waits for the ledger to record the rollback) follows on the
// same PagerDuty incident and in Slack. The steps are recorded on the
// rollout's incident as they succeed, so a redelivery (after a failure, a
// ledger that is behind, or of a duplicate rollback) does only what is left,
// and a rollout whose incident is complete is acknowledged without a second
// page.
func (n *Dispatcher) rollback(ctx context.Context, ev cloudevents.Event, last bool) (err error) {
	rb, err := events.RollbackOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read rollback: %w", err))
	}
	log := n.log.With("app", rb.App, "environment", rb.Environment, "rollout", rb.RolloutID, "event", ev.ID())

	claim, err := n.claim(ctx, rb.RolloutID, ev.ID())
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

	r := n.routes(rb.App)
	if !r.known {
		log.Warn("app has no notification routes in the policy; the rollback is reported but nobody is paged")
	}
	chans, errs := n.channels(r, notify.ChannelPagerDuty, notify.ChannelSlack)
	pd, sl := chans[notify.ChannelPagerDuty], chans[notify.ChannelSlack]

	// 1. Page now: nothing about it waits for the ledger.
	if pd != nil && claim.Incident.PagedAt.IsZero() {
		err := n.page(ctx, log, claim, pd, rollbackPage(ev, rb))
		if errors.Is(err, incident.ErrLost) {
			return err // another instance took over: it does the rest
		}
		errs = append(errs, err)
	}
	if !claim.Incident.PagedAt.IsZero() && claim.Incident.PublishedAt.IsZero() {
		err := n.publishPage(ctx, log, claim, ev, rb)
		if errors.Is(err, incident.ErrLost) {
			return err
		}
		errs = append(errs, err)
	}

	// 2. The report, once the ledger has the rollback.
	rd, err := n.reportFor(ctx, log, claim, ev, last)
	if err != nil {
		// Retried later: what is recorded on the incident is not done
		// again, a permanent page failure included.
		return outcome(append(errs, err))
	}

	// 3. The report on the same PagerDuty incident, and in Slack.
	if pd != nil && !claim.Incident.PagedAt.IsZero() && claim.Incident.ReportPagedAt.IsZero() {
		note := rollbackPage(ev, rb)
		note.Details = json.RawMessage(rd.JSON)
		err := n.sendStep(ctx, log, claim, notify.ChannelPagerDuty, pd, note, func(i *incident.Incident, at time.Time) { i.ReportPagedAt = at })
		if errors.Is(err, incident.ErrLost) {
			return err
		}
		errs = append(errs, err)
	}
	if sl != nil && claim.Incident.PostedAt.IsZero() {
		onCall := "no PagerDuty route"
		switch {
		case !claim.Incident.PagedAt.IsZero():
			onCall = "paged on PagerDuty, dedup key " + notify.Code(claim.Incident.DedupKey)
		case pd != nil:
			onCall = "*the PagerDuty page failed*: page on-call by hand"
		}
		note := rollbackPage(ev, rb)
		note.Message = rollbackMessage(rd.report, onCall)
		err := n.sendStep(ctx, log, claim, notify.ChannelSlack, sl, note, func(i *incident.Incident, at time.Time) { i.PostedAt = at })
		if errors.Is(err, incident.ErrLost) {
			return err
		}
		errs = append(errs, err)
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

// sendStep sends note on one channel and, once it is delivered, records the
// step on the incident with mark.
func (n *Dispatcher) sendStep(ctx context.Context, log *slog.Logger, claim *incident.Claim, channel string, ch notify.Notifier, note *notify.Notification, mark func(*incident.Incident, time.Time)) error {
	if err := n.send(ctx, log, channel, ch, note); err != nil {
		return err
	}
	return claim.Update(ctx, func(i *incident.Incident) { mark(i, n.cfg.Now().UTC()) })
}

// rollbackPage is the page of a rollback, from the event alone: what, where,
// why, with the rollback's payload as details.
func rollbackPage(ev cloudevents.Event, rb events.Rollback) *notify.Notification {
	return &notify.Notification{
		About:     events.KindRollback,
		Key:       pagerduty.DedupKey(rb.RolloutID),
		Summary:   pageSummary(rb),
		Source:    rb.App + " (" + rb.Environment + ")",
		Component: rb.App,
		Group:     rb.Environment,
		Class:     rb.Trigger.Rule,
		Time:      ev.Time(),
		Details:   rb,
	}
}

// claim takes the rollout's incident. While another instance holds it (a
// duplicate rollback on another replica), it waits for that one to finish,
// up to the ledger wait, rather than retry the message blindly.
func (n *Dispatcher) claim(ctx context.Context, rolloutID, eventID string) (*incident.Claim, error) {
	deadline := time.Now().Add(n.cfg.LedgerWait)
	for {
		claim, err := n.cfg.Incidents.Claim(ctx, rolloutID, eventID, n.cfg.Holder)
		if !errors.Is(err, incident.ErrHeld) || time.Now().After(deadline) {
			return claim, err
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
func (n *Dispatcher) reportFor(ctx context.Context, log *slog.Logger, claim *incident.Claim, ev cloudevents.Event, last bool) (*rendered, error) {
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
		chain, err := n.waitForEvent(ctx, chainID, ev.ID(), last)
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
func (n *Dispatcher) page(ctx context.Context, log *slog.Logger, claim *incident.Claim, pd notify.Notifier, note *notify.Notification) error {
	if err := n.send(ctx, log, notify.ChannelPagerDuty, pd, note); err != nil {
		return err
	}
	var ticket string
	if t, ok := pd.(interface{ TicketURI(key string) string }); ok {
		ticket = t.TicketURI(note.Key)
	}
	return claim.Update(ctx, func(i *incident.Incident) {
		i.PagedAt, i.DedupKey, i.TicketURI = n.cfg.Now().UTC(), note.Key, ticket
	})
}

// PageEventID is the id of the page event for a rollout: fixed, so that a
// retried publish is dropped by JetStream's duplicate window.
func PageEventID(rolloutID string) string { return "notifier-page-" + rolloutID }

// publishPage announces the page on the bus, in the release's chain.
func (n *Dispatcher) publishPage(ctx context.Context, log *slog.Logger, claim *incident.Claim, ev cloudevents.Event, rb events.Rollback) error {
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
		Description: fmt.Sprintf("rollback of %s in %s: %s", rb.App, rb.Environment, events.TriggerText(rb.Trigger.Rule, rb.Trigger.Origin, rb.Trigger.Observed, rb.Trigger.Threshold)),
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
