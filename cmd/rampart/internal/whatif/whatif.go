// Package whatif re-judges recorded history under a candidate policy: every
// recorded image verdict under new gate rules (from the findings its signed
// vulnerability attestation lists), every recorded canary analysis under new
// thresholds (from the metric values the watcher recorded with it). It reads
// events and decides nothing live: the answer is a report of which releases
// would have been blocked, passed or rolled back differently, beside what
// happened (decision 0024).
package whatif

import (
	"fmt"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
)

// Outcome is how a release ended, or would have.
type Outcome string

// Outcomes.
const (
	Blocked    Outcome = "blocked"     // the gate refused it: never promoted
	Released   Outcome = "released"    // reached 100%
	RolledBack Outcome = "rolled back" // a canary analysis or alert sent traffic back
	InFlight   Outcome = "in flight"   // promoted, not finished when the history ends
	Passed     Outcome = "passed"      // passes the gate; what follows was never recorded
)

// Candidate is the policy to judge history under. A nil part keeps what was
// in force.
type Candidate struct {
	// Gate replaces the gate policy the scanner judged verdicts under.
	Gate *gate.Policy
	// Apps replaces rampart.yaml's analysis thresholds.
	Apps *policy.Policy
}

// Record is one recorded event and where it is in the ledger.
type Record struct {
	Index int64
	Event cloudevents.Event
}

// Release is one release (an image verdict's chain) as it happened and as it
// would have under the candidate.
type Release struct {
	Chain    string `json:"chain"`
	App      string `json:"app"`
	Artifact string `json:"artifact"`
	// Version is the image tag, or the digest's first 12 hex digits.
	Version  string    `json:"version"`
	At       time.Time `json:"at"`
	Happened Outcome   `json:"happened"`
	// HappenedWhy is the recorded reason (the verdict's or the rollback's).
	HappenedWhy string  `json:"happenedWhy,omitempty"`
	WhatIf      Outcome `json:"whatIf"`
	// Why explains WhatIf: the blocking findings, the thresholds crossed or
	// not.
	Why     []string `json:"why"`
	Changed bool     `json:"changed"`
	// Notes are limits of the evidence (findings not all recorded, steps
	// whose metrics were not recorded).
	Notes []string `json:"notes,omitempty"`
	// Evidence are the ledger indexes of the events judged.
	Evidence []int64 `json:"evidence"`
}

// Report is a what-if over a history.
type Report struct {
	GatePolicy  string    `json:"gatePolicy,omitempty"` // version of the candidate gate policy
	GateURI     string    `json:"gateUri,omitempty"`    // where it was read from
	AppsPolicy  string    `json:"appsPolicy,omitempty"` // digest of the candidate rampart.yaml
	AppsFile    string    `json:"appsFile,omitempty"`
	Releases    []Release `json:"releases"`
	Changed     int       `json:"changed"`
	Events      int       `json:"events"`      // events read
	SourceScans int       `json:"sourceScans"` // commit verdicts, not re-judged
	Unattested  int       `json:"unattested"`  // image verdicts without a vuln attestation
	GeneratedAt time.Time `json:"generatedAt"`
}

// chain gathers one chain's events.
type chain struct {
	id       string
	verdict  *Record // the first image verdict: the gate decision
	scan     events.Scan
	rollouts map[string]bool
	rollback *Record
	release  *Record
	promoted bool
	analyses []Record // the step analyses of its rollouts
}

// Judge re-judges history (in ledger order) under c.
func Judge(history []Record, c Candidate) Report {
	rep := Report{Events: len(history), GeneratedAt: time.Now().UTC()}
	if c.Gate != nil {
		rep.GatePolicy, rep.GateURI = c.Gate.Version, c.Gate.URI
	}
	if c.Apps != nil {
		rep.AppsPolicy, rep.AppsFile = c.Apps.Digest, c.Apps.File
	}
	chains := map[string]*chain{}
	var order []*chain
	byRollout := map[string]*chain{}
	get := func(id string) *chain {
		ch, ok := chains[id]
		if !ok {
			ch = &chain{id: id, rollouts: map[string]bool{}}
			chains[id] = ch
			order = append(order, ch)
		}
		return ch
	}
	for i := range history {
		r := &history[i]
		ev := r.Event
		switch events.KindOf(ev.Type()) {
		case events.KindScan:
			s, err := events.ScanOf(ev)
			if err != nil {
				continue
			}
			if s.TargetKind != "image" {
				rep.SourceScans++
				continue
			}
			ch := get(events.ChainID(ev))
			if ch.verdict == nil {
				ch.verdict, ch.scan = r, s
			}
		case events.KindPromote:
			if p, err := events.PromotionOf(ev); err == nil {
				ch := get(events.ChainID(ev))
				ch.promoted, ch.rollouts[p.RolloutID] = true, true
				byRollout[p.RolloutID] = ch
			}
		case events.KindRollback:
			if rb, err := events.RollbackOf(ev); err == nil {
				if ch := byRollout[rb.RolloutID]; ch != nil && ch.rollback == nil {
					ch.rollback = r
				}
			}
		case events.KindAnalysis:
			if a, err := events.AnalysisOf(ev); err == nil {
				if ch := byRollout[a.RolloutID]; ch != nil {
					ch.analyses = append(ch.analyses, *r)
				}
			}
		case events.KindRelease:
			if rl, err := events.ReleaseOf(ev); err == nil {
				if ch := byRollout[rl.RolloutID]; ch != nil {
					ch.release = r
				}
			}
		}
	}
	for _, ch := range order {
		if ch.verdict == nil {
			continue // a chain without an image verdict (a commit's, a live alert's)
		}
		rel := judgeChain(ch, c, &rep)
		if rel.Changed {
			rep.Changed++
		}
		rep.Releases = append(rep.Releases, rel)
	}
	return rep
}

func judgeChain(ch *chain, c Candidate, rep *Report) Release {
	s := ch.scan
	rel := Release{Chain: ch.id, App: events.App(ch.verdict.Event), Artifact: s.Target, Version: version(s.Target),
		At: ch.verdict.Event.Time().UTC(), Evidence: []int64{ch.verdict.Index}}
	// What happened.
	switch {
	case s.Outcome != events.OutcomePass:
		rel.Happened, rel.HappenedWhy = Blocked, s.Reason
	case ch.rollback != nil:
		rel.Happened = RolledBack
		if rb, err := events.RollbackOf(ch.rollback.Event); err == nil {
			rel.HappenedWhy = rb.Trigger.Description
		}
		rel.Evidence = append(rel.Evidence, ch.rollback.Index)
	case ch.release != nil:
		rel.Happened = Released
		rel.Evidence = append(rel.Evidence, ch.release.Index)
	case ch.promoted:
		rel.Happened = InFlight
	default:
		rel.Happened = Passed
	}
	slices.Sort(rel.Evidence)

	// The gate under the candidate.
	passes := s.Outcome == events.OutcomePass
	if c.Gate != nil && s.Outcome != events.OutcomeError {
		fs, notes := findingsOf(s)
		if len(notes) > 0 && !strings.Contains(notes[0], "only the") {
			rep.Unattested++
		}
		rel.Notes = append(rel.Notes, notes...)
		d := c.Gate.Evaluate(fs, rel.At) // waivers as they stood when the verdict was made
		passes = d.Outcome == gate.Pass
		if !passes {
			rel.WhatIf, rel.Why = Blocked, d.Reasons
		} else {
			rel.Why = append(rel.Why, "gate: "+strings.Join(d.Reasons, "; "))
		}
	} else if !passes {
		rel.WhatIf, rel.Why = Blocked, []string{"gate unchanged: " + s.Reason}
	}
	if !passes {
		rel.Changed = rel.Happened != Blocked
		return rel
	}
	if rel.Happened == Blocked {
		rel.WhatIf = Passed
		rel.Notes = append(rel.Notes, "never promoted then: no canary evidence to judge")
		rel.Changed = true
		return rel
	}

	// The canary under the candidate's thresholds.
	rel.WhatIf = rel.Happened
	if c.Apps == nil {
		return rel
	}
	app, ok := c.Apps.App(rel.App)
	if !ok {
		rel.Notes = append(rel.Notes, fmt.Sprintf("the candidate rampart.yaml has no application %q: analysis not re-judged", rel.App))
		return rel
	}
	// Each step as analysed: would its worst reading cross a candidate threshold?
	for _, r := range ch.analyses {
		rel.Evidence = append(rel.Evidence, r.Index)
		an, err := events.AnalysisOf(r.Event)
		if err != nil {
			continue
		}
		for _, m := range an.Metrics {
			if m.Readings == 0 {
				continue
			}
			if why, breach := crosses(m.Rule, m.Observed, app.Analysis); breach {
				rel.WhatIf, rel.Changed = RolledBack, rel.Happened != RolledBack
				rel.Why = append(rel.Why, fmt.Sprintf("step %d at %d%%: %s", an.Step+1, an.Weight, why))
				slices.Sort(rel.Evidence)
				return rel
			}
		}
	}
	slices.Sort(rel.Evidence)
	if len(ch.analyses) == 0 {
		rel.Notes = append(rel.Notes, "no step analysis recorded with its metrics: steps not re-judged")
	} else if ch.rollback == nil {
		rel.Why = append(rel.Why, fmt.Sprintf("every analysed step (%d) within the candidate thresholds", len(ch.analyses)))
	}
	// The rollback: would its trigger still fire?
	if ch.rollback != nil {
		rb, _ := events.RollbackOf(ch.rollback.Event)
		t := rb.Trigger
		if t.Observed == nil || (t.Rule != ruleErrorRate && t.Rule != ruleMemory) {
			rel.Why = append(rel.Why, fmt.Sprintf("rollback trigger %s (%s) has no threshold in rampart.yaml: unchanged", t.Rule, t.Origin))
			return rel
		}
		if why, breach := crosses(t.Rule, *t.Observed, app.Analysis); breach {
			rel.Why = append(rel.Why, "rollback still triggered: "+why)
			return rel
		}
		why, _ := crosses(t.Rule, *t.Observed, app.Analysis)
		rel.WhatIf, rel.Changed = Passed, true
		rel.Why = append(rel.Why, "rollback not triggered: "+why)
		rel.Notes = append(rel.Notes, "the rollout stopped there: later steps were never analysed")
	}
	return rel
}

// Rule names as the watcher records them.
const (
	ruleErrorRate = "http-5xx-ratio"
	ruleMemory    = "memory-ratio"
)

// crosses says whether observed breaks the candidate's threshold for rule.
func crosses(rule string, observed float64, a policy.Analysis) (string, bool) {
	switch rule {
	case ruleErrorRate:
		if observed > a.ErrorRate.Max {
			return fmt.Sprintf("5xx ratio %.2f%% is above the candidate maximum %.2f%%", 100*observed, 100*a.ErrorRate.Max), true
		}
		return fmt.Sprintf("5xx ratio %.2f%% is within the candidate maximum %.2f%%", 100*observed, 100*a.ErrorRate.Max), false
	case ruleMemory:
		if observed > a.Memory.MaxRatio {
			return fmt.Sprintf("memory %.2f× stable is above the candidate maximum %.2f×", observed, a.Memory.MaxRatio), true
		}
		return fmt.Sprintf("memory %.2f× stable is within the candidate maximum %.2f×", observed, a.Memory.MaxRatio), false
	}
	return "", false
}

// findingsOf reads a verdict's findings from its vulnerability attestation
// (every finding), else from the verdict's own list (the most severe only).
func findingsOf(s events.Scan) ([]finding.Finding, []string) {
	for _, raw := range s.Attestations {
		if attest.PredicateTypeOf(raw) != attest.PredicateVuln {
			continue
		}
		st, err := attest.Open(raw, attest.PredicateVuln)
		if err != nil {
			break
		}
		v, err := attest.VulnOf(st)
		if err != nil {
			break
		}
		fs := make([]finding.Finding, 0, len(v.Scanner.Result.Findings))
		for _, f := range v.Scanner.Result.Findings {
			fs = append(fs, toFinding(f.ID, f.Package, f.InstalledVersion, f.FixedVersion, f.Severity, f.Title))
		}
		var notes []string
		if v.Scanner.Result.Omitted > 0 {
			notes = append(notes, fmt.Sprintf("only the %d most severe findings are recorded (%d omitted)", len(fs), v.Scanner.Result.Omitted))
		}
		return fs, notes
	}
	fs := make([]finding.Finding, 0, len(s.Findings))
	for _, f := range s.Findings {
		fs = append(fs, toFinding(f.ID, f.Package, f.InstalledVersion, f.FixedVersion, f.Severity, f.Title))
	}
	total := 0
	for _, n := range s.Counts {
		total += n
	}
	return fs, []string{fmt.Sprintf("no vulnerability attestation: judged on the %d of %d findings the verdict lists", len(fs), total)}
}

func toFinding(id, pkg, installed, fixed, severity, title string) finding.Finding {
	sev, _ := finding.ParseSeverity(severity) // unknown names count as UNKNOWN
	return finding.Finding{ID: id, Package: pkg, InstalledVersion: installed, FixedVersion: fixed, Severity: sev, Title: title}
}

// version names an artifact for people: its tag, or a short digest.
func version(purl string) string {
	o, err := events.ParseOCI(purl)
	if err != nil {
		return purl
	}
	if o.Tag != "" {
		return o.Tag
	}
	return strings.TrimPrefix(o.Digest, "sha256:")[:min(12, len(strings.TrimPrefix(o.Digest, "sha256:")))]
}
