package notifier

import (
	"fmt"
	"strings"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// pageSummary is the PagerDuty summary of a rollback: what, where, why.
func pageSummary(r *report.Report) string {
	return fmt.Sprintf("Rollback of %s in %s: %s at %d%% canary traffic; traffic back on %s (rollout %s)",
		r.App, r.Environment, report.TriggerText(r.Trigger.Rule, r.Trigger.Origin, r.Trigger.Observed, r.Trigger.Threshold),
		r.TrafficAtAbort, report.ShortArtifact(r.Versions.To.Artifact), r.RolloutID)
}

// rollbackMessage is the Slack form of a rollback report: a header, the key
// facts as fields, the timeline and the scans. onCall says (in mrkdwn)
// whether on-call was paged.
func rollbackMessage(r *report.Report, onCall string) slack.Message {
	t := r.Trigger
	value := func(v *float64) string {
		if v == nil {
			return "–"
		}
		return report.Number(*v)
	}
	fields := slack.Fields(
		slack.Field{Label: "Rolled back from", Value: slack.Code(digestOr(r.Versions.From))},
		slack.Field{Label: "Returned to", Value: slack.Code(digestOr(r.Versions.To))},
		slack.Field{Label: "Traffic at abort", Value: fmt.Sprintf("%d%%", r.TrafficAtAbort)},
		slack.Field{Label: "Trigger", Value: slack.Code(t.Rule) + " (" + slack.Escape(t.Origin) + ")"},
		slack.Field{Label: "Observed", Value: value(t.Observed)},
		slack.Field{Label: "Threshold", Value: value(t.Threshold)},
		slack.Field{Label: "Rollout", Value: slack.Code(r.RolloutID)},
		slack.Field{Label: "On-call", Value: onCall},
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
		fmt.Fprintf(&tl, "\n`#%s` %s +%s %s", idx, s.Time.UTC().Format("15:04:05.000"), s.Time.Sub(start).Round(1e6), slack.Escape(s.Summary))
	}
	if r.Ledger.Note != "" {
		tl.WriteString("\n_" + slack.Escape(r.Ledger.Note) + "_")
	}
	var scans strings.Builder
	scans.WriteString("*Scans*")
	if len(r.Scans) == 0 {
		scans.WriteString("\nnone in the ledger")
	}
	for _, s := range r.Scans {
		counts := report.FormatCounts(s.Counts)
		if counts == "" {
			counts = "no findings"
		}
		fmt.Fprintf(&scans, "\n%s scan *%s* of %s: %s", slack.Escape(s.TargetKind), slack.Escape(s.Outcome), slack.Code(report.ShortArtifact(s.Target)), slack.Escape(counts))
	}
	intro := fmt.Sprintf("Rollout %s was rolled back at %s: %s. Traffic returned to the stable version.",
		slack.Code(r.RolloutID), r.RolledBackAt.UTC().Format("2006-01-02 15:04:05Z"), slack.Escape(report.TriggerText(t.Rule, t.Origin, t.Observed, t.Threshold)))
	if t.Description != "" {
		intro += "\n>" + slack.Escape(t.Description)
	}
	return slack.NewMessage(
		fmt.Sprintf("Rollback of %s in %s: %s", r.App, r.Environment, report.TriggerText(t.Rule, t.Origin, t.Observed, t.Threshold)),
		slack.Header(fmt.Sprintf("Rollback: %s in %s", r.App, r.Environment)),
		slack.Section(intro),
		fields,
		slack.Divider(),
		slack.Section(tl.String()),
		slack.Section(scans.String()),
		slack.Context("Full report: "+slack.Code("rampart report rollback "+r.RolloutID), "chain "+slack.Code(r.Ledger.ChainID)),
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
func anomalyMessage(a events.Anomaly) slack.Message {
	text := fmt.Sprintf("Anomaly on %s in %s: %s", a.App, a.Environment, report.TriggerText(a.Rule, a.Origin, a.Observed, a.Threshold))
	fs := []slack.Field{
		{Label: "Rule", Value: slack.Code(a.Rule)},
		{Label: "Origin", Value: slack.Escape(a.Origin)},
		{Label: "Against", Value: slack.Escape(a.Target)},
	}
	if a.Observed != nil {
		fs = append(fs, slack.Field{Label: "Observed", Value: report.Number(*a.Observed)})
	}
	if a.Threshold != nil {
		fs = append(fs, slack.Field{Label: "Threshold", Value: report.Number(*a.Threshold)})
	}
	if a.ArtifactID != "" {
		fs = append(fs, slack.Field{Label: "Version", Value: slack.Code(report.ShortArtifact(a.ArtifactID))})
	}
	if a.RolloutID != "" {
		fs = append(fs, slack.Field{Label: "Rollout", Value: slack.Code(a.RolloutID)})
	}
	blocks := []slack.Block{slack.Header(fmt.Sprintf("Anomaly: %s in %s", a.App, a.Environment))}
	if a.Description != "" {
		blocks = append(blocks, slack.Section(slack.Escape(a.Description)))
	}
	blocks = append(blocks, slack.Fields(fs...),
		slack.Context("Heads-up only: the deployer acts on it, and a rollback pages on-call."))
	return slack.NewMessage(text, blocks...)
}

// scanBlockedMessage says why a version will not be promoted.
func scanBlockedMessage(app string, s events.Scan) slack.Message {
	counts := report.FormatCounts(s.Counts)
	if counts == "" {
		counts = "no counts"
	}
	text := fmt.Sprintf("Scan blocked %s in %s: %s", report.ShortArtifact(s.Target), s.Environment, counts)
	fs := []slack.Field{
		{Label: "Target", Value: slack.Code(report.ShortArtifact(s.Target))},
		{Label: "Kind", Value: slack.Escape(s.TargetKind)},
		{Label: "Findings", Value: slack.Escape(counts)},
	}
	if s.Reason != "" {
		fs = append(fs, slack.Field{Label: "Reason", Value: slack.Escape(s.Reason)})
	}
	if s.DBVersion != "" {
		fs = append(fs, slack.Field{Label: "Vulnerability DB", Value: slack.Escape(s.DBVersion)})
	}
	blocks := []slack.Block{slack.Header(fmt.Sprintf("Scan blocked: %s in %s", app, s.Environment)), slack.Fields(fs...)}
	var top strings.Builder
	for i, f := range s.Findings {
		if i == 10 {
			fmt.Fprintf(&top, "\n… and %d more", len(s.Findings)-i)
			break
		}
		fmt.Fprintf(&top, "\n%s %s", slack.Escape(f.Severity), slack.Code(f.ID))
		if f.Package != "" {
			fmt.Fprintf(&top, " in %s %s", slack.Escape(f.Package), slack.Escape(f.InstalledVersion))
		}
		if f.FixedVersion != "" {
			fmt.Fprintf(&top, " (fixed in %s)", slack.Escape(f.FixedVersion))
		}
	}
	if top.Len() > 0 {
		blocks = append(blocks, slack.Section("*Findings*"+top.String()))
	}
	blocks = append(blocks, slack.Context("This version will not be promoted."))
	return slack.NewMessage(text, blocks...)
}

// releaseMessage announces a completed release.
func releaseMessage(r events.Release) slack.Message {
	text := fmt.Sprintf("Released %s to %s: %s at 100%%", r.App, r.Environment, report.ShortArtifact(r.ArtifactID))
	fs := []slack.Field{
		{Label: "Version", Value: slack.Code(report.ShortArtifact(r.ArtifactID))},
		{Label: "Rollout", Value: slack.Code(r.RolloutID)},
	}
	if r.Previous != "" {
		fs = append(fs, slack.Field{Label: "Previous", Value: slack.Code(report.ShortArtifact(r.Previous))})
	} else {
		fs = append(fs, slack.Field{Label: "Previous", Value: "first release"})
	}
	return slack.NewMessage(text, slack.Header(fmt.Sprintf("Released: %s in %s", r.App, r.Environment)), slack.Fields(fs...))
}
