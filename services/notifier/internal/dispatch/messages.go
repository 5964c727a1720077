package dispatch

import (
	"fmt"
	"strings"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// pageSummary is the PagerDuty summary of a rollback: what, where, why.
func pageSummary(rb events.Rollback) string {
	return fmt.Sprintf("Rollback of %s in %s: %s at %d%% canary traffic; traffic back on %s (rollout %s)",
		rb.App, rb.Environment, events.TriggerText(rb.Trigger.Rule, rb.Trigger.Origin, rb.Trigger.Observed, rb.Trigger.Threshold),
		rb.TrafficAtAbort, events.ShortArtifact(rb.ArtifactID), rb.RolloutID)
}

// rollbackMessage is the Slack form of a rollback report: a header, the key
// facts as fields, the timeline and the scans. onCall says (in mrkdwn)
// whether on-call was paged.
func rollbackMessage(r *report.Report, onCall string) notify.Message {
	t := r.Trigger
	value := func(v *float64) string {
		if v == nil {
			return "–"
		}
		return report.Number(*v)
	}
	fields := notify.Fields(
		notify.Field{Label: "Rolled back from", Value: notify.Code(digestOr(r.Versions.From))},
		notify.Field{Label: "Returned to", Value: notify.Code(digestOr(r.Versions.To))},
		notify.Field{Label: "Traffic at abort", Value: fmt.Sprintf("%d%%", r.TrafficAtAbort)},
		notify.Field{Label: "Trigger", Value: notify.Code(t.Rule) + " (" + notify.Escape(t.Origin) + ")"},
		notify.Field{Label: "Observed", Value: value(t.Observed)},
		notify.Field{Label: "Threshold", Value: value(t.Threshold)},
		notify.Field{Label: "Rollout", Value: notify.Code(r.RolloutID)},
		notify.Field{Label: "On-call", Value: onCall},
	)
	var tl strings.Builder
	tl.WriteString("*Timeline*")
	var start = r.RolledBackAt
	if len(r.Timeline) > 0 {
		start = r.Timeline[0].Time
	}
	for _, s := range r.Timeline {
		idx := "–"
		if s.LedgerIndex != nil {
			idx = fmt.Sprint(*s.LedgerIndex)
		}
		fmt.Fprintf(&tl, "\n`#%s` %s +%s %s", idx, s.Time.UTC().Format("15:04:05.000"), s.Time.Sub(start).Round(1e6), notify.Escape(s.Summary))
	}
	if r.Ledger.Note != "" {
		tl.WriteString("\n_" + notify.Escape(r.Ledger.Note) + "_")
	}
	var scans strings.Builder
	scans.WriteString("*Scans*")
	if len(r.Scans) == 0 {
		scans.WriteString("\nnone in the ledger")
	}
	for _, s := range r.Scans {
		counts := events.FormatCounts(s.Counts)
		if counts == "" {
			counts = "no findings"
		}
		fmt.Fprintf(&scans, "\n%s scan *%s* of %s: %s", notify.Escape(s.TargetKind), notify.Escape(s.Outcome), notify.Code(events.ShortArtifact(s.Target)), notify.Escape(counts))
	}
	intro := fmt.Sprintf("Rollout %s was rolled back at %s: %s. Traffic returned to the stable version.",
		notify.Code(r.RolloutID), r.RolledBackAt.UTC().Format("2006-01-02 15:04:05Z"), notify.Escape(events.TriggerText(t.Rule, t.Origin, t.Observed, t.Threshold)))
	if t.Description != "" {
		intro += "\n>" + notify.Escape(t.Description)
	}
	return notify.NewMessage(
		fmt.Sprintf("Rollback of %s in %s: %s", r.App, r.Environment, events.TriggerText(t.Rule, t.Origin, t.Observed, t.Threshold)),
		notify.Header(fmt.Sprintf("Rollback: %s in %s", r.App, r.Environment)),
		notify.Section(intro),
		fields,
		notify.Divider(),
		notify.Section(tl.String()),
		notify.Section(scans.String()),
		notify.Context("Full report: "+notify.Code("rampart report rollback "+r.RolloutID), "chain "+notify.Code(r.Ledger.ChainID)),
	)
}

func digestOr(v report.Version) string {
	if v.Digest != "" {
		return v.Digest
	}
	return v.Artifact
}

// anomalyMessage is a heads-up: something is wrong with a live version; the
// deployer decides what to do, and a rollback pages.
func anomalyMessage(a events.Anomaly) notify.Message {
	text := fmt.Sprintf("Anomaly on %s in %s: %s", a.App, a.Environment, events.TriggerText(a.Rule, a.Origin, a.Observed, a.Threshold))
	fs := []notify.Field{
		{Label: "Rule", Value: notify.Code(a.Rule)},
		{Label: "Origin", Value: notify.Escape(a.Origin)},
		{Label: "Against", Value: notify.Escape(a.Target)},
	}
	if a.Observed != nil {
		fs = append(fs, notify.Field{Label: "Observed", Value: report.Number(*a.Observed)})
	}
	if a.Threshold != nil {
		fs = append(fs, notify.Field{Label: "Threshold", Value: report.Number(*a.Threshold)})
	}
	if a.ArtifactID != "" {
		fs = append(fs, notify.Field{Label: "Version", Value: notify.Code(events.ShortArtifact(a.ArtifactID))})
	}
	if a.RolloutID != "" {
		fs = append(fs, notify.Field{Label: "Rollout", Value: notify.Code(a.RolloutID)})
	}
	blocks := []notify.Block{notify.Header(fmt.Sprintf("Anomaly: %s in %s", a.App, a.Environment))}
	if a.Description != "" {
		blocks = append(blocks, notify.Section(notify.Escape(a.Description)))
	}
	blocks = append(blocks, notify.Fields(fs...),
		notify.Context("Heads-up only: the deployer acts on it, and a rollback pages on-call."))
	return notify.NewMessage(text, blocks...)
}

// scanBlockedMessage says why a version will not be promoted.
func scanBlockedMessage(app string, s events.Scan) notify.Message {
	counts := events.FormatCounts(s.Counts)
	if counts == "" {
		counts = "no counts"
	}
	text := fmt.Sprintf("Scan blocked %s in %s: %s", events.ShortArtifact(s.Target), s.Environment, counts)
	fs := []notify.Field{
		{Label: "Target", Value: notify.Code(events.ShortArtifact(s.Target))},
		{Label: "Kind", Value: notify.Escape(s.TargetKind)},
		{Label: "Findings", Value: notify.Escape(counts)},
	}
	if s.Reason != "" {
		fs = append(fs, notify.Field{Label: "Reason", Value: notify.Escape(s.Reason)})
	}
	if s.DBVersion != "" {
		fs = append(fs, notify.Field{Label: "Vulnerability DB", Value: notify.Escape(s.DBVersion)})
	}
	blocks := []notify.Block{notify.Header(fmt.Sprintf("Scan blocked: %s in %s", app, s.Environment)), notify.Fields(fs...)}
	var top strings.Builder
	for i, f := range s.Findings {
		if i == 10 {
			fmt.Fprintf(&top, "\n… and %d more", len(s.Findings)-i)
			break
		}
		fmt.Fprintf(&top, "\n%s %s", notify.Escape(f.Severity), notify.Code(f.ID))
		if f.Package != "" {
			fmt.Fprintf(&top, " in %s %s", notify.Escape(f.Package), notify.Escape(f.InstalledVersion))
		}
		if f.FixedVersion != "" {
			fmt.Fprintf(&top, " (fixed in %s)", notify.Escape(f.FixedVersion))
		}
	}
	if top.Len() > 0 {
		blocks = append(blocks, notify.Section("*Findings*"+top.String()))
	}
	blocks = append(blocks, notify.Context("This version will not be promoted."))
	return notify.NewMessage(text, blocks...)
}

// releaseMessage announces a completed release.
func releaseMessage(r events.Release) notify.Message {
	text := fmt.Sprintf("Released %s to %s: %s at 100%%", r.App, r.Environment, events.ShortArtifact(r.ArtifactID))
	fs := []notify.Field{
		{Label: "Version", Value: notify.Code(events.ShortArtifact(r.ArtifactID))},
		{Label: "Rollout", Value: notify.Code(r.RolloutID)},
	}
	if r.Previous != "" {
		fs = append(fs, notify.Field{Label: "Previous", Value: notify.Code(events.ShortArtifact(r.Previous))})
	} else {
		fs = append(fs, notify.Field{Label: "Previous", Value: "first release"})
	}
	return notify.NewMessage(text, notify.Header(fmt.Sprintf("Released: %s in %s", r.App, r.Environment)), notify.Fields(fs...))
}
