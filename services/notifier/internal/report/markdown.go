package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// Markdown renders the report for people: a summary table, the trigger, the
// timeline with ledger indexes and elapsed times, and the scans.
func (r *Report) Markdown() []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("# Rollback: %s in %s\n\n", r.App, r.Environment)
	w("Rollout `%s` was rolled back at %s with %d%% of traffic on the canary; traffic returned to the stable version.\n\n",
		r.RolloutID, stamp(r.RolledBackAt), r.TrafficAtAbort)

	w("| | |\n|---|---|\n")
	row := func(k, v string) { w("| %s | %s |\n", k, cell(v)) }
	row("App", r.App)
	row("Environment", r.Environment)
	row("Rolled back from", versionText(r.Versions.From))
	row("Returned to", versionText(r.Versions.To))
	row("Traffic at abort", fmt.Sprintf("%d%%", r.TrafficAtAbort))
	row("Rollout", "`"+r.RolloutID+"`")
	if r.Ledger.ChainID != "" {
		row("Chain", "`"+r.Ledger.ChainID+"`")
	}
	w("\n## Trigger\n\n")
	t := r.Trigger
	w("| Rule | Origin | Observed | Threshold | Detected |\n|---|---|---|---|---|\n")
	w("| `%s` | %s | %s | %s | %s |\n\n", t.Rule, cell(t.Origin), value(t.Observed), value(t.Threshold), stamp(t.DetectedAt))
	if t.Description != "" {
		w("%s\n\n", t.Description)
	}

	w("## Timeline\n\n")
	if r.Ledger.Note != "" {
		w("> %s\n\n", r.Ledger.Note)
	}
	w("| Ledger | Time | Elapsed | Event | What happened |\n|---:|---|---:|---|---|\n")
	var start time.Time
	if len(r.Timeline) > 0 {
		start = r.Timeline[0].Time
	}
	for _, s := range r.Timeline {
		w("| %s | %s | %s | %s | %s |\n", index(s.LedgerIndex), stamp(s.Time), elapsed(s.Time.Sub(start)), s.Kind, cell(s.Summary))
	}

	w("\n## Scans\n\n")
	if len(r.Scans) == 0 {
		w("No scan of this release is in the ledger.\n")
	}
	for _, s := range r.Scans {
		counts := events.FormatCounts(s.Counts)
		if counts == "" {
			counts = "no findings"
		}
		w("- **%s** %s scan of `%s` (ledger %s): %s", s.Outcome, s.TargetKind, events.ShortArtifact(s.Target), index(s.LedgerIndex), counts)
		if s.Reason != "" {
			w("; %s", s.Reason)
		}
		if s.DBVersion != "" {
			w("; vulnerability DB %s", s.DBVersion)
		}
		w("\n")
		for _, f := range s.TopFindings {
			pkg := ""
			if f.Package != "" {
				pkg = " in " + f.Package + " " + f.InstalledVersion
				if f.FixedVersion != "" {
					pkg += " (fixed in " + f.FixedVersion + ")"
				}
			}
			w("  - %s %s%s\n", f.Severity, f.ID, pkg)
		}
	}
	w("\n---\nRollback event `%s`", r.RollbackEventID)
	if r.Ledger.RollbackIndex != nil {
		w(", ledger entry %d", *r.Ledger.RollbackIndex)
	}
	w(". Report generated at %s by the Rampart notifier.\n", stamp(r.GeneratedAt))
	return []byte(b.String())
}

// versionText names a version by digest, with its repository and tag.
func versionText(v Version) string {
	if v.Digest == "" {
		return "`" + v.Artifact + "`"
	}
	s := "`" + v.Digest + "`"
	if v.Repository != "" {
		s += " " + v.Repository
	}
	if v.Tag != "" {
		s += ":" + v.Tag
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func elapsed(d time.Duration) string {
	if d < 0 {
		return "-" + elapsed(-d)
	}
	return "+" + d.Round(time.Millisecond).String()
}

func index(i *uint64) string {
	if i == nil {
		return "–"
	}
	return fmt.Sprint(*i)
}

func value(v *float64) string {
	if v == nil {
		return "–"
	}
	return Number(*v)
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
