package compliance

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rampartci/rampart/pkg/events"
)

// Control statuses.
const (
	StatusEvidenced      = "evidenced"
	StatusWithExceptions = "evidenced with exceptions"
	StatusNoActivity     = "no activity"
)

// controls maps the period's evidence to the SOC 2 and ISO/IEC 27001:2022
// controls auditors ask about.
func (r *Report) controls(lone []*entryFacts) {
	var changes, vulns, anomalies, testing []Evidence
	policies := map[string][]int64{}
	dbs := map[string][]int64{}
	for _, c := range r.Changes {
		name := changeName(c)
		var trail []string
		var idx []int64
		for _, g := range c.Gates {
			trail = append(trail, fmt.Sprintf("%s scan %s (entry %d)", g.Kind, g.Outcome, g.Index))
			idx = append(idx, g.Index)
			ev := Evidence{Change: c.Chain, Indexes: []int64{g.Index},
				Text: fmt.Sprintf("%s: %s scan %s, %s; policy %s", name, g.Kind, g.Outcome, countsText(g.Counts), orNone(g.PolicyVersion))}
			testing = append(testing, ev)
			if g.PolicyVersion != "" {
				policies[g.PolicyVersion] = append(policies[g.PolicyVersion], g.Index)
			}
			if g.Kind == "image" {
				v := ev
				v.Text = fmt.Sprintf("%s: image scan %s, %s; vulnerability DB %s", name, g.Outcome, countsText(g.Counts), orNone(g.DBVersion))
				if ids := findingIDs(g.Findings); g.Outcome == events.OutcomeBlocked && ids != "" {
					v.Text += "; blocked on " + ids
				}
				vulns = append(vulns, v)
				if g.DBVersion != "" {
					dbs[g.DBVersion] = append(dbs[g.DBVersion], g.Index)
				}
			}
		}
		if ro := c.Rollout; ro != nil {
			trail = append(trail, fmt.Sprintf("promoted (entry %d)", ro.PromotedIndex))
			idx = append(idx, ro.PromotedIndex)
			for _, s := range ro.CanarySteps {
				trail = append(trail, fmt.Sprintf("%d%% (entry %d)", s.Weight, s.Index))
				idx = append(idx, s.Index)
			}
			if ro.ReleaseIndex >= 0 {
				trail = append(trail, fmt.Sprintf("released (entry %d)", ro.ReleaseIndex))
				idx = append(idx, ro.ReleaseIndex)
			}
		}
		if rb := c.Rollback; rb != nil {
			trail = append(trail, fmt.Sprintf("rolled back (entry %d)", rb.Index))
			idx = append(idx, rb.Index)
			ev := Evidence{Change: c.Chain, Indexes: []int64{rb.Index}, Text: fmt.Sprintf("%s: %s → rolled back at %d%%", name, rb.Trigger, rb.TrafficAtAbort)}
			if rb.AnomalyIndex >= 0 {
				ev.Indexes = []int64{rb.AnomalyIndex, rb.Index}
			}
			if c.Page != nil {
				ev.Text += " → on-call paged (" + c.Page.Ticket + ")"
				ev.Indexes = append(ev.Indexes, c.Page.Index)
			}
			anomalies = append(anomalies, ev)
		}
		if c.Page != nil {
			trail = append(trail, fmt.Sprintf("paged (entry %d)", c.Page.Index))
			idx = append(idx, c.Page.Index)
		}
		if len(trail) > 0 {
			changes = append(changes, Evidence{Change: c.Chain, Indexes: idx, Text: name + ": " + strings.Join(trail, " → ") + "; outcome: " + c.Outcome})
		}
	}
	for _, f := range lone {
		if f.kind == events.KindAnomaly {
			anomalies = append(anomalies, Evidence{Indexes: []int64{f.index}, Text: f.text})
		}
	}
	var config []Evidence
	for _, v := range slices.Sorted(maps.Keys(policies)) {
		idx := policies[v]
		config = append(config, Evidence{Indexes: idx, Text: fmt.Sprintf("policy %s in force for %d verdict(s), entries %d to %d", v, len(idx), slices.Min(idx), slices.Max(idx))})
	}
	for _, v := range slices.Sorted(maps.Keys(dbs)) {
		idx := dbs[v]
		vulns = append(vulns, Evidence{Indexes: idx, Text: fmt.Sprintf("vulnerability DB %s used by %d image scan(s)", v, len(idx))})
	}

	kinds := func(ks ...string) []int {
		var out []int
		for i, x := range r.Exceptions {
			if slices.Contains(ks, x.Kind) {
				out = append(out, i)
			}
		}
		return out
	}
	changeExc := kinds(ExceptionManual, ExceptionUnjudged, ExceptionGap, ExceptionWaiver)
	vulnExc := kinds(ExceptionWaiver, ExceptionUnjudged)
	anomalyExc := kinds(ExceptionFailed, ExceptionManual, ExceptionUnacted)
	testExc := kinds(ExceptionWaiver, ExceptionUnjudged)

	add := func(fw, id, title, statement string, ev []Evidence, exc []int) {
		c := Control{Framework: fw, ID: id, Title: title, Statement: statement, Evidence: ev, Exceptions: exc}
		if c.Evidence == nil {
			c.Evidence = []Evidence{}
		}
		switch {
		case len(ev) == 0:
			c.Status = StatusNoActivity
		case len(exc) > 0:
			c.Status = StatusWithExceptions
		default:
			c.Status = StatusEvidenced
		}
		r.Controls = append(r.Controls, c)
	}
	st := r.tally()
	changeText := fmt.Sprintf("%d change(s): %d promoted, %d of them on a signed passing image scan verdict in their chain; %d released after every canary step passed, %d rolled back, %d in progress; %d stopped at a scan gate and never promoted.",
		len(r.Changes), st.promoted, st.promotedOnVerdict, st.released, st.rolledBack, st.inProgress, st.blocked)
	vulnText := fmt.Sprintf("%d image scan(s), %d with the vulnerability database version recorded; %d did not pass (blocked on their findings or not completed), %d of those changes promoted.",
		st.imageScans, st.imageScansWithDB, st.imageBlocked, st.blockedPromoted)
	anomalyText := fmt.Sprintf("%d anomal(ies) recorded; %d canary rollback(s) on them, %d with on-call paged.", r.Summary.Anomalies, st.rollbacks, st.paged)
	testText := fmt.Sprintf("%d source scan(s) (secrets, misconfiguration, dependencies) and %d image scan(s) were gates a change had to pass; %d verdict(s) signed by the scanner.",
		st.sourceScans, st.imageScans, st.signed)
	configText := fmt.Sprintf("%d gate policy version(s) in force, each recorded with the verdicts it judged.", len(policies))
	const soc2, iso = "SOC 2", "ISO/IEC 27001:2022"
	add(soc2, "CC8.1", "Changes are authorized, tested, approved and implemented",
		changeText+" Tested and approved: the scan verdicts under the recorded policy; authorized: the deployer's promotion on that verdict; implemented: the canary steps and release.",
		changes, changeExc)
	add(soc2, "CC7.1", "Vulnerabilities are detected",
		vulnText, vulns, vulnExc)
	add(soc2, "CC7.2", "Anomalies are detected and acted on",
		anomalyText, anomalies, anomalyExc)
	add(iso, "A.8.32", "Change management",
		changeText+" Each step of each change is a ledger entry.", changes, changeExc)
	add(iso, "A.8.8", "Management of technical vulnerabilities",
		vulnText, vulns, vulnExc)
	add(iso, "A.8.25 / A.8.29", "Secure development life cycle; security testing in development and acceptance",
		testText, testing, testExc)
	add(iso, "A.8.9", "Configuration management",
		configText, config, nil)
}

func countsText(c map[string]int) string {
	if s := events.FormatCounts(c); s != "" {
		return s
	}
	return "no findings"
}

func findingIDs(fs []events.Finding) string {
	var ids []string
	for _, f := range fs {
		if !slices.Contains(ids, f.ID) {
			ids = append(ids, f.ID)
		}
	}
	return strings.Join(ids, ", ")
}

// summarize counts the period.
func (r *Report) summarize(lone []*entryFacts) {
	s := Summary{Changes: len(r.Changes), Exceptions: len(r.Exceptions), EntriesInReport: len(r.Entries)}
	policies, dbs := map[string]bool{}, map[string]bool{}
	for _, c := range r.Changes {
		switch c.Outcome {
		case OutcomeReleased:
			s.Released++
		case OutcomeRolledBack:
			s.RolledBack++
		case OutcomeBlockedAtSource:
			s.BlockedAtSource++
		case OutcomeBlockedAtImage:
			s.BlockedAtImage++
		case OutcomeInProgress:
			s.InProgress++
		}
		for _, g := range c.Gates {
			s.Scans++
			if g.PolicyVersion != "" {
				policies[g.PolicyVersion] = true
			}
			if g.DBVersion != "" {
				dbs[g.DBVersion] = true
			}
		}
		if c.Rollout != nil && c.Rollout.ScanIndex < 0 {
			s.PromotionsNoCheck++
		}
		if c.Page != nil {
			s.Pages++
		}
		for _, e := range c.Events {
			if e.Kind == events.KindAnomaly {
				s.Anomalies++
			}
		}
	}
	for _, f := range lone {
		switch f.kind {
		case events.KindAnomaly:
			s.Anomalies++
		case events.KindPage:
			s.Pages++
		}
	}
	s.PolicyVersions, s.DatabaseVersions = len(policies), len(dbs)
	r.Summary = s
}

// tally counts what the control statements state.
type tally struct {
	promoted, promotedOnVerdict, released, rolledBack, inProgress, blocked int
	imageScans, imageScansWithDB, imageBlocked, sourceScans, signed        int
	blockedPromoted, rollbacks, paged                                      int
}

func (r *Report) tally() tally {
	var t tally
	for _, c := range r.Changes {
		switch c.Outcome {
		case OutcomeReleased:
			t.released++
		case OutcomeRolledBack:
			t.rolledBack++
		case OutcomeInProgress:
			t.inProgress++
		case OutcomeBlockedAtSource, OutcomeBlockedAtImage, OutcomeScanError, OutcomeNotServed:
			t.blocked++
		}
		if ro := c.Rollout; ro != nil {
			t.promoted++
			if ro.ScanIndex >= 0 && slices.ContainsFunc(c.Gates, func(g Gate) bool { return g.Index == ro.ScanIndex && g.Signed }) {
				t.promotedOnVerdict++
			}
		}
		for _, g := range c.Gates {
			if g.Signed {
				t.signed++
			}
			switch g.Kind {
			case "image":
				t.imageScans++
				if g.DBVersion != "" {
					t.imageScansWithDB++
				}
				if g.Outcome != events.OutcomePass {
					t.imageBlocked++
					if c.Rollout != nil && g.Index < c.Rollout.PromotedIndex {
						t.blockedPromoted++
					}
				}
			case "source":
				t.sourceScans++
			}
		}
		if c.Rollback != nil {
			t.rollbacks++
			if c.Page != nil {
				t.paged++
			}
		}
	}
	return t
}
