package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
)

// Describe is a one-line account of ev for a timeline: what happened, in the
// words of its typed payload. Events it cannot read are named by type.
func Describe(ev cloudevents.Event) string {
	switch events.KindOf(ev.Type()) {
	case events.KindCommit:
		if c, err := events.CommitOf(ev); err == nil {
			if c.PullRequest != 0 {
				return fmt.Sprintf("pull request #%d opened on %s at %s", c.PullRequest, c.Repository, short(c.SHA, 12))
			}
			return fmt.Sprintf("commit %s merged to %s", short(c.SHA, 12), c.Repository)
		}
	case events.KindArtifact:
		if a, err := events.ArtifactOf(ev); err == nil {
			s := "image pushed: " + a.Repository + "@" + ShortDigest(a.Digest)
			if a.Tag != "" {
				s += " (" + a.Tag + ")"
			}
			return s
		}
	case events.KindScan:
		if s, err := events.ScanOf(ev); err == nil {
			out := fmt.Sprintf("%s scan %s of %s", s.TargetKind, s.Outcome, ShortArtifact(s.Target))
			if c := FormatCounts(s.Counts); c != "" {
				out += ": " + c
			}
			if s.Reason != "" && s.Outcome != events.OutcomePass {
				out += " (" + s.Reason + ")"
			}
			return out
		}
	case events.KindTestOutput:
		if o, err := events.TestOutputOf(ev); err == nil {
			return fmt.Sprintf("scan %s published (%s)", o.OutputType, o.Format)
		}
	case events.KindPromote:
		if p, err := events.PromotionOf(ev); err == nil {
			return fmt.Sprintf("promoted %s, steps %s", ShortArtifact(p.ArtifactID), percents(p.Steps))
		}
	case events.KindCanaryStep:
		if s, err := events.CanaryStepOf(ev); err == nil {
			return fmt.Sprintf("canary step %d: %d%% of traffic to %s", s.Step+1, s.Weight, ShortArtifact(s.ArtifactID))
		}
	case events.KindRelease:
		if r, err := events.ReleaseOf(ev); err == nil {
			return fmt.Sprintf("release completed: %s at 100%%", ShortArtifact(r.ArtifactID))
		}
	case events.KindAnomaly:
		if a, err := events.AnomalyOf(ev); err == nil {
			return "anomaly: " + TriggerText(a.Rule, a.Origin, a.Observed, a.Threshold)
		}
	case events.KindRollback:
		if r, err := events.RollbackOf(ev); err == nil {
			return fmt.Sprintf("rolled back at %d%% canary traffic; traffic returned to %s", r.TrafficAtAbort, ShortArtifact(r.ArtifactID))
		}
	case events.KindPage:
		if p, err := events.PageOf(ev); err == nil {
			return "on-call paged: " + p.TicketURI
		}
	}
	return ev.Type()
}

// TriggerText is "rule observed 0.0342 > threshold 0.01 (origin)", or the
// rule and origin alone when the anomaly carries no values.
func TriggerText(rule, origin string, observed, threshold *float64) string {
	s := rule
	switch {
	case observed != nil && threshold != nil:
		s += " observed " + Number(*observed) + " > threshold " + Number(*threshold)
	case observed != nil:
		s += " observed " + Number(*observed)
	}
	if origin != "" {
		s += " (" + origin + ")"
	}
	return s
}

// Number formats a metric value for people: up to four significant digits.
func Number(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// ShortDigest is "sha256:" and the first 12 hex digits of a digest.
func ShortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return short(d, 19)
	}
	return algo + ":" + short(hex, 12)
}

// ShortArtifact names an artifact briefly: name@sha256:123456789abc for an
// OCI purl, the id itself otherwise.
func ShortArtifact(purl string) string {
	if o, err := events.ParseOCI(purl); err == nil {
		return o.Name + "@" + ShortDigest(o.Digest)
	}
	return purl
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func percents(steps []int) string {
	parts := make([]string, len(steps))
	for i, w := range steps {
		parts[i] = strconv.Itoa(w) + "%"
	}
	return strings.Join(parts, " → ")
}

// severityOrder is the order findings and counts are shown in.
var severityOrder = []string{"critical", "high", "medium", "low", "unknown"}

func normSeverity(s string) string { return strings.ToLower(s) }

func severityRank(s string) int {
	if i := slices.Index(severityOrder, normSeverity(s)); i >= 0 {
		return i
	}
	return len(severityOrder)
}

// FormatCounts is "1 critical, 2 high" over the non-zero counts, worst first.
func FormatCounts(counts map[string]int) string {
	norm := map[string]int{}
	for k, n := range counts {
		norm[normSeverity(k)] += n
	}
	keys := make([]string, 0, len(norm))
	for k, n := range norm {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := severityRank(a), severityRank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", norm[k], k)
	}
	return strings.Join(parts, ", ")
}

// topFindings returns up to n findings, worst first, in a stable order.
func topFindings(fs []events.Finding, n int) []events.Finding {
	if len(fs) == 0 {
		return nil
	}
	out := slices.Clone(fs)
	slices.SortStableFunc(out, func(a, b events.Finding) int {
		if ra, rb := severityRank(a.Severity), severityRank(b.Severity); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out[:min(n, len(out))]
}
