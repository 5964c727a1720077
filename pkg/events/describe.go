package events

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// Describe is a one-line account of ev for people (a report's timeline, the
// demo's log): what happened, in the words of its typed payload. An event it
// cannot read is named by its type. Short identifiers print whole.
func Describe(ev cloudevents.Event) string {
	switch KindOf(ev.Type()) {
	case KindCommit:
		if c, err := CommitOf(ev); err == nil {
			if c.PullRequest != 0 {
				return fmt.Sprintf("pull request #%d opened on %s at %s", c.PullRequest, c.Repository, prefix(c.SHA, 12))
			}
			return fmt.Sprintf("commit %s merged to %s", prefix(c.SHA, 12), c.Repository)
		}
	case KindArtifact:
		if a, err := ArtifactOf(ev); err == nil {
			s := "image pushed: " + a.Repository + "@" + shortDigest(a.Digest)
			if a.Tag != "" {
				s += " (" + a.Tag + ")"
			}
			return s
		}
	case KindScan:
		if s, err := ScanOf(ev); err == nil {
			what := ShortArtifact(s.Target)
			if s.TargetKind == "source" {
				what = "commit " + prefix(s.Target, 12)
			}
			found := FormatCounts(s.Counts)
			if found == "" {
				found = "no findings"
			}
			switch s.TargetKind {
			case "stage": // a candidate's checks in a pre-production stage
				return fmt.Sprintf("checks of %s in %s: %s, %s", what, s.Environment, s.Outcome, found)
			case "dast": // a DAST report uploaded about a stage
				return fmt.Sprintf("DAST report on %s in %s: %s, %s", what, s.Environment, s.Outcome, found)
			}
			return fmt.Sprintf("%s scan of %s: %s, %s", s.TargetKind, what, s.Outcome, found)
		}
	case KindTestOutput:
		if o, err := TestOutputOf(ev); err == nil {
			return fmt.Sprintf("scan %s published (%s)", o.OutputType, o.Format)
		}
	case KindPromote:
		if p, err := PromotionOf(ev); err == nil {
			return fmt.Sprintf("promoted %s, steps %s", ShortArtifact(p.ArtifactID), percents(p.Steps))
		}
	case KindCanaryStep:
		if s, err := CanaryStepOf(ev); err == nil {
			return fmt.Sprintf("canary step %d: %d%% of traffic to %s", s.Step+1, s.Weight, ShortArtifact(s.ArtifactID))
		}
	case KindAnalysis:
		if a, err := AnalysisOf(ev); err == nil {
			var ms []string
			for _, m := range a.Metrics {
				ms = append(ms, fmt.Sprintf("%s %s worst %.4g (max %.4g)", m.Rule, m.Result, m.Observed, m.Threshold))
			}
			return fmt.Sprintf("canary step %d analysed (%d readings): %s", a.Step+1, a.Readings, strings.Join(ms, ", "))
		}
	case KindRelease:
		if r, err := ReleaseOf(ev); err == nil {
			return fmt.Sprintf("release completed: %s at 100%%", ShortArtifact(r.ArtifactID))
		}
	case KindAnomaly:
		if a, err := AnomalyOf(ev); err == nil {
			return "anomaly: " + TriggerText(a.Rule, a.Origin, a.Observed, a.Threshold)
		}
	case KindRollback:
		if r, err := RollbackOf(ev); err == nil {
			return fmt.Sprintf("rolled back at %d%% canary traffic; traffic returned to %s", r.TrafficAtAbort, ShortArtifact(r.ArtifactID))
		}
	case KindDrill:
		if d, err := DrillOf(ev); err == nil {
			return d.Text()
		}
	case KindIntervention:
		if iv, err := InterventionOf(ev); err == nil {
			return iv.Text()
		}
	case KindStage:
		if s, err := StageDeploymentOf(ev); err == nil {
			if s.Failed != "" {
				return fmt.Sprintf("%s never served by %s: %s; it goes no further", ShortArtifact(s.ArtifactID), s.Stage, s.Failed)
			}
			return fmt.Sprintf("%s deployed to %s (%s), to be checked there", ShortArtifact(s.ArtifactID), s.Stage, s.URL)
		}
	case KindPage:
		if p, err := PageOf(ev); err == nil {
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
		s += " observed " + number(*observed) + " > threshold " + number(*threshold)
	case observed != nil:
		s += " observed " + number(*observed)
	}
	if origin != "" {
		s += " (" + origin + ")"
	}
	return s
}

// number formats a metric value for people: up to four significant digits.
func number(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// shortDigest is "sha256:" and the first 12 hex digits of a digest.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return prefix(d, 19)
	}
	return algo + ":" + prefix(hex, 12)
}

// ShortArtifact names an artifact briefly: name@sha256:123456789abc for an
// OCI purl, the id itself otherwise.
func ShortArtifact(purl string) string {
	if o, err := ParseOCI(purl); err == nil {
		return o.Name + "@" + shortDigest(o.Digest)
	}
	return purl
}

// prefix is the first n bytes of s, or s when it is shorter.
func prefix(s string, n int) string {
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

// severities is the order counts are shown in, worst first.
var severities = []string{"critical", "high", "medium", "low", "unknown"}

// FormatCounts is "1 critical, 2 high" over the non-zero counts by severity
// (in any case), worst first.
func FormatCounts(counts map[string]int) string {
	norm := map[string]int{}
	for k, n := range counts {
		norm[strings.ToLower(k)] += n
	}
	keys := make([]string, 0, len(norm))
	for k, n := range norm {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	rank := func(s string) int {
		if i := slices.Index(severities, s); i >= 0 {
			return i
		}
		return len(severities)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
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
