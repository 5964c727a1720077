package compliance

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// Input is what a report is built from: the proven entries and the
// checkpoint they are proven against, with the period and filter. Build is
// a pure function of it, so Verify can rebuild a report and compare.
type Input struct {
	GeneratedAt time.Time
	Period      Period
	Filter      Filter
	Ledger      Ledger
	Entries     []ProvenEntry // in ledger order
}

// InputOf is the input r was built from.
func InputOf(r *Report) Input {
	return Input{GeneratedAt: r.GeneratedAt, Period: r.Period, Filter: r.Filter, Ledger: r.Ledger, Entries: r.Entries}
}

// entryFacts is what the report reads of one entry.
type entryFacts struct {
	index int64
	e     *entry.Entry
	ev    *cloudevents.Event // nil for a dead letter or an unreadable event
	kind  string             // events.Kind…, "deadletter" or "unreadable"
	app   string
	env   string
	text  string
}

func describeEntry(e *entry.Entry) entryFacts {
	d := entryFacts{index: int64(e.Index), e: e}
	if e.Kind != entry.KindEvent {
		d.kind, d.text = "deadletter", fmt.Sprintf("dead letter from %s: %s", e.OriginalSubject, e.Reason)
		return d
	}
	evs, err := events.ParseStructured(e.Event)
	if err != nil || len(evs) != 1 {
		d.kind, d.text = "unreadable", "event "+e.EventID+" of type "+e.Type+" (not readable)"
		return d
	}
	d.ev = &evs[0]
	d.kind, d.text, d.app = events.KindOf(e.Type), events.Describe(evs[0]), events.App(evs[0])
	switch d.kind {
	case events.KindScan:
		if s, err := events.ScanOf(*d.ev); err == nil {
			d.env = s.Environment
		}
	case events.KindPromote:
		if p, err := events.PromotionOf(*d.ev); err == nil {
			d.app, d.env = p.App, p.Environment
		}
	case events.KindCanaryStep:
		if s, err := events.CanaryStepOf(*d.ev); err == nil {
			d.app, d.env = s.App, s.Environment
		}
	case events.KindRelease:
		if r, err := events.ReleaseOf(*d.ev); err == nil {
			d.app, d.env = r.App, r.Environment
		}
	case events.KindRollback:
		if r, err := events.RollbackOf(*d.ev); err == nil {
			d.app, d.env = r.App, r.Environment
		}
	case events.KindIntervention:
		if iv, err := events.InterventionOf(*d.ev); err == nil {
			d.app, d.env = iv.App, iv.Environment
		}
	case events.KindPage:
		if p, err := events.PageOf(*d.ev); err == nil {
			d.app, d.env = p.App, p.Environment
		}
	case events.KindAnomaly:
		if a, err := events.AnomalyOf(*d.ev); err == nil {
			d.app, d.env = a.App, a.Environment
			if a.Target == events.TargetLedger {
				d.app, d.env = "", "" // the ledger's own record: in every report
			}
		}
	}
	return d
}

// Build derives the report from in. It fails only on an entry that does
// not parse; everything else is stated, including what is missing.
func Build(in Input) (*Report, error) {
	r := &Report{
		Format: Format, GeneratedAt: in.GeneratedAt, Period: in.Period, Filter: in.Filter, Ledger: in.Ledger,
		Exceptions: []Exception{}, Changes: []Change{}, Entries: in.Entries,
	}
	facts := make([]entryFacts, len(in.Entries))
	byIndex := map[int64]*entryFacts{}
	for i, pe := range in.Entries {
		e, err := entry.Unmarshal([]byte(pe.Entry))
		if err != nil {
			return nil, fmt.Errorf("ledger entry %d: %w", pe.Index, err)
		}
		if pe.Index < 0 || uint64(pe.Index) != e.Index {
			return nil, fmt.Errorf("ledger entry %d: the entry says index %d", pe.Index, e.Index)
		}
		if i > 0 && pe.Index <= in.Entries[i-1].Index {
			return nil, fmt.Errorf("ledger entry %d: after entry %d (entries must be in ledger order)", pe.Index, in.Entries[i-1].Index)
		}
		facts[i] = describeEntry(e)
		byIndex[pe.Index] = &facts[i]
	}
	r.Coverage = coverage(facts, byIndex, in)

	// The changes: chains with an entry in the period that the filter keeps.
	var order []string
	chains := map[string][]*entryFacts{}
	var lone []*entryFacts
	for i := range facts {
		f := &facts[i]
		if !inPeriod(f.e, in.Period) || !in.Filter.keeps(*f) {
			continue
		}
		if f.e.ChainID == "" {
			lone = append(lone, f)
			continue
		}
		if _, ok := chains[f.e.ChainID]; !ok {
			order = append(order, f.e.ChainID)
			chains[f.e.ChainID] = nil
		}
	}
	for i := range facts {
		if id := facts[i].e.ChainID; id != "" {
			if _, ok := chains[id]; ok {
				chains[id] = append(chains[id], &facts[i])
			}
		}
	}
	for _, id := range order {
		r.Changes = append(r.Changes, buildChange(id, chains[id]))
	}
	r.exceptions(lone, facts, in)
	r.summarize(lone)
	r.controls(lone)
	r.Notes = notes(r.Coverage)
	return r, nil
}

// coverage states which entries the period holds and whether the report
// carries all of them, with the bounds proven.
func coverage(facts []entryFacts, byIndex map[int64]*entryFacts, in Input) Coverage {
	c := Coverage{First: -1, Last: -1}
	for _, f := range facts {
		if inPeriod(f.e, in.Period) {
			if c.First < 0 {
				c.First = f.index
			}
			c.Last = f.index
		}
	}
	if c.First < 0 {
		c.Note = "the report holds no entry recorded in the period"
		return c
	}
	var missing []int64
	for i := c.First; i <= c.Last; i++ {
		if f, ok := byIndex[i]; !ok || !inPeriod(f.e, in.Period) {
			missing = append(missing, i)
		}
	}
	before, after := c.First == 0, c.Last+1 == in.Ledger.Size
	if f, ok := byIndex[c.First-1]; ok && f.e.RecordedAt.Before(in.Period.From) {
		before = true
	}
	if f, ok := byIndex[c.Last+1]; ok && !f.e.RecordedAt.Before(in.Period.To) {
		after = true
	}
	switch {
	case !in.Filter.empty():
		c.Note = fmt.Sprintf("entries %d to %d were recorded in the period; this report keeps those of %s and proves each, but not that it omits none of them", c.First, c.Last, in.Filter.text())
	case len(missing) > 0:
		c.Note = fmt.Sprintf("entries %d to %d were recorded in the period; %d of them are not in this report (first: %d)", c.First, c.Last, len(missing), missing[0])
	case !before || !after:
		c.Note = fmt.Sprintf("entries %d to %d are in the period, but the entries that bound it are not in this report", c.First, c.Last)
	default:
		c.Complete = true
		c.Note = fmt.Sprintf("every entry recorded in the period is in this report: entries %d to %d, bounded by %s and %s", c.First, c.Last,
			bound(c.First == 0, "the log's start", fmt.Sprintf("entry %d before the period", c.First-1)),
			bound(c.Last+1 == in.Ledger.Size, fmt.Sprintf("the checkpoint's end (size %d)", in.Ledger.Size), fmt.Sprintf("entry %d after it", c.Last+1)))
	}
	return c
}

func bound(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

func (f Filter) text() string {
	var parts []string
	if len(f.Apps) > 0 {
		parts = append(parts, "application "+strings.Join(f.Apps, ", "))
	}
	if len(f.Environments) > 0 {
		parts = append(parts, "environment "+strings.Join(f.Environments, ", "))
	}
	return strings.Join(parts, " in ")
}

var waivedRE = regexp.MustCompile(`\b([0-9]+) waived\b`)

// buildChange reads one chain's entries, in ledger order.
func buildChange(id string, fs []*entryFacts) Change {
	c := Change{Chain: id, Kind: "other", Gates: []Gate{}, Events: []Event{}}
	anomalies := map[string]int64{} // event id → index
	var rolloutEvents []*entryFacts // promote, steps, release, rollback, anomalies of the rollout
	lastPass := int64(-1)
	for _, f := range fs {
		c.Events = append(c.Events, eventOf(f))
		if c.App == "" {
			c.App = f.app
		}
		if c.Environment == "" {
			c.Environment = f.env
		}
		if f.ev == nil {
			continue
		}
		ev := *f.ev
		switch f.kind {
		case events.KindCommit:
			if cm, err := events.CommitOf(ev); err == nil && c.Trigger.Text == "" {
				c.Kind, c.Subject = "commit", fmt.Sprintf("commit %s to %s", short(cm.SHA, 12), cm.Repository)
				c.Trigger = Trigger{Index: f.index, Text: f.text, Who: cm.Author}
			}
		case events.KindArtifact:
			if a, err := events.ArtifactOf(ev); err == nil && c.Trigger.Text == "" {
				c.Kind, c.Subject, c.Version = "image", a.Repository+"@"+short(a.Digest, 19), a.Tag
				c.Trigger = Trigger{Index: f.index, Text: f.text, Who: a.User}
			}
		case events.KindScan:
			s, err := events.ScanOf(ev)
			if err != nil {
				continue
			}
			g := Gate{Index: f.index, At: ev.Time().UTC(), Kind: s.TargetKind, Outcome: s.Outcome, Reason: s.Reason, Counts: s.Counts,
				DBVersion: s.DBVersion, PolicyVersion: s.PolicyVersion, Signed: s.Signature != ""}
			if g.Counts == nil {
				g.Counts = map[string]int{}
			}
			g.Waivers = s.Waivers
			g.Waived = len(g.Waivers)
			if m := waivedRE.FindStringSubmatch(s.Reason); m != nil && g.Waived == 0 {
				g.Waived, _ = strconv.Atoi(m[1])
			}
			g.Findings = s.Findings[:min(len(s.Findings), 10)]
			c.Gates = append(c.Gates, g)
			if s.Outcome == events.OutcomePass && s.TargetKind == "image" {
				lastPass = f.index
			}
			if c.Subject == "" {
				c.Kind, c.Subject = s.TargetKind, events.ShortArtifact(s.Target)
				if s.TargetKind == "source" {
					c.Kind, c.Subject = "commit", "commit "+short(s.Target, 12)
				}
			}
		case events.KindPromote:
			p, err := events.PromotionOf(ev)
			if err != nil || c.Rollout != nil {
				continue
			}
			c.Rollout = &Rollout{ID: p.RolloutID, PromotedIndex: f.index, PromotedAt: ev.Time().UTC(), Previous: p.Previous, Steps: p.Steps,
				ScanIndex: lastPass, CanarySteps: []Step{}, ReleaseIndex: -1}
			rolloutEvents = append(rolloutEvents, f)
		case events.KindCanaryStep:
			if s, err := events.CanaryStepOf(ev); err == nil && c.Rollout != nil {
				c.Rollout.CanarySteps = append(c.Rollout.CanarySteps, Step{Index: f.index, At: ev.Time().UTC(), Weight: s.Weight})
				rolloutEvents = append(rolloutEvents, f)
			}
		case events.KindRelease:
			if c.Rollout != nil && c.Rollout.ReleaseIndex < 0 {
				c.Rollout.ReleaseIndex = f.index
				rolloutEvents = append(rolloutEvents, f)
			}
		case events.KindAnomaly:
			anomalies[ev.ID()] = f.index
			rolloutEvents = append(rolloutEvents, f)
		case events.KindRollback:
			rb, err := events.RollbackOf(ev)
			if err != nil || c.Rollback != nil {
				continue
			}
			c.Rollback = &Rollback{Index: f.index, At: ev.Time().UTC(), Rule: rb.Trigger.Rule, Origin: rb.Trigger.Origin, Description: rb.Trigger.Description,
				Trigger:        events.TriggerText(rb.Trigger.Rule, rb.Trigger.Origin, rb.Trigger.Observed, rb.Trigger.Threshold),
				TrafficAtAbort: rb.TrafficAtAbort, AnomalyIndex: -1, Manual: rb.Trigger.Origin == "operator"}
			if i, ok := anomalies[rb.AnomalyID]; ok {
				c.Rollback.AnomalyIndex = i
			}
			rolloutEvents = append(rolloutEvents, f)
		case events.KindStage:
			if sd, err := events.StageDeploymentOf(ev); err == nil && sd.Failed != "" && c.NotServed == nil {
				c.NotServed = &NotServed{Index: f.index, At: ev.Time().UTC(), Stage: sd.Stage, Reason: sd.Failed}
			}
		case events.KindIntervention:
			if iv, err := events.InterventionOf(ev); err == nil {
				c.Interventions = append(c.Interventions, Intervention{Index: f.index, At: iv.AppliedAt.UTC(), Action: iv.Action, Who: iv.Actor,
					Via: iv.Via, Reason: iv.Reason, PhaseBefore: iv.PhaseBefore, PhaseAfter: iv.PhaseAfter})
			}
		case events.KindPage:
			if p, err := events.PageOf(ev); err == nil && c.Page == nil {
				c.Page = &Page{Index: f.index, At: ev.Time().UTC(), Ticket: p.TicketURI, DedupKey: p.DedupKey, Channels: p.Channels, Text: p.Description}
			}
		}
	}
	if len(fs) > 0 {
		c.Started, c.Finished = fs[0].e.RecordedAt.UTC(), fs[len(fs)-1].e.RecordedAt.UTC()
	}
	if c.Subject == "" {
		c.Subject = "chain " + id
	}
	if c.Rollout != nil {
		judgeSteps(c.Rollout, c.Rollback, rolloutEvents)
	}
	if rb := c.Rollback; rb != nil && rb.Manual {
		for _, iv := range c.Interventions {
			if iv.Action == "abort" {
				rb.Who = iv.Who
			}
		}
	}
	c.Outcome = outcomeOf(&c)
	return c
}

// judgeSteps says for each canary step how long it held and why it passed:
// the watcher records anomalies, not passing measurements, so a step passed
// when the rollout's next step (or its release) followed with no anomaly
// recorded against it in between.
func judgeSteps(ro *Rollout, rb *Rollback, evs []*entryFacts) {
	for i := range ro.CanarySteps {
		s := &ro.CanarySteps[i]
		pos := slices.IndexFunc(evs, func(f *entryFacts) bool { return f.index == s.Index })
		var next *entryFacts
		var anomaly *entryFacts
		for _, f := range evs[pos+1:] {
			if f.kind == events.KindAnomaly {
				if anomaly == nil {
					anomaly = f
				}
				continue
			}
			next = f
			break
		}
		if next == nil {
			if anomaly != nil {
				s.Analysis = fmt.Sprintf("anomaly at entry %d (%s); no action recorded by the checkpoint", anomaly.index, anomaly.text)
			} else {
				s.Analysis = "no outcome recorded by the checkpoint: the step was still being judged"
			}
			continue
		}
		s.Held = next.ev.Time().Sub(s.At).Round(time.Millisecond).String()
		switch next.kind {
		case events.KindCanaryStep, events.KindRelease:
			s.Passed = true
			s.Analysis = fmt.Sprintf("held %s with no anomaly recorded against the rollout; entry %d followed (%s)", s.Held, next.index, next.kind)
		case events.KindRollback:
			s.Analysis = fmt.Sprintf("rolled back at entry %d after %s", next.index, s.Held)
			if rb != nil {
				s.Analysis = fmt.Sprintf("rolled back at entry %d after %s: %s", next.index, s.Held, rb.Trigger)
				if rb.AnomalyIndex >= 0 {
					s.Analysis += fmt.Sprintf(" (anomaly at entry %d)", rb.AnomalyIndex)
				}
			}
		default:
			s.Analysis = fmt.Sprintf("entry %d followed (%s)", next.index, next.kind)
		}
	}
}

func outcomeOf(c *Change) string {
	switch {
	case c.Rollback != nil:
		return OutcomeRolledBack
	case c.Rollout != nil && c.Rollout.ReleaseIndex >= 0:
		return OutcomeReleased
	case c.Rollout != nil:
		return OutcomeInProgress
	case c.NotServed != nil:
		return OutcomeNotServed
	}
	for _, g := range c.Gates {
		switch {
		case g.Outcome == events.OutcomeBlocked && g.Kind == "source":
			return OutcomeBlockedAtSource
		case g.Outcome == events.OutcomeBlocked:
			return OutcomeBlockedAtImage
		case g.Outcome == events.OutcomeError:
			return OutcomeScanError
		}
	}
	if len(c.Gates) == 0 {
		return OutcomeInProgress
	}
	return OutcomePassed
}

func eventOf(f *entryFacts) Event {
	e := Event{Index: f.index, RecordedAt: f.e.RecordedAt.UTC(), Kind: f.kind, Text: f.text}
	if f.ev != nil {
		e.Time = f.ev.Time().UTC()
	}
	return e
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// exceptions lists what is outside the normal path.
func (r *Report) exceptions(lone []*entryFacts, facts []entryFacts, in Input) {
	add := func(kind, change, text string, idx ...int64) {
		r.Exceptions = append(r.Exceptions, Exception{Kind: kind, Text: text, Change: change, Indexes: idx})
	}
	for _, c := range r.Changes {
		name := changeName(c)
		for _, g := range c.Gates {
			for _, w := range g.Waivers {
				what := w.ID
				if w.Package != "" {
					what += " in " + w.Package
				}
				text := fmt.Sprintf("%s: %s accepted at the %s scan by a waiver owned by %s, expiring %s (policy %s)", name, what, g.Kind, w.Owner, w.Expires.Format(time.RFC3339), orNone(g.PolicyVersion))
				if w.Reason != "" {
					text += ": " + w.Reason
				}
				add(ExceptionWaiver, c.Chain, text, g.Index)
			}
			if g.Waived > 0 && len(g.Waivers) == 0 {
				add(ExceptionWaiver, c.Chain, fmt.Sprintf("%s: %d finding(s) accepted by waivers at the %s scan (policy %s); the verdict does not name the waivers, their owners or expiry", name, g.Waived, g.Kind, orNone(g.PolicyVersion)), g.Index)
			}
			if g.Outcome == events.OutcomeError {
				add(ExceptionUnjudged, c.Chain, fmt.Sprintf("%s: the %s scan did not complete (%s); the change was not let through", name, g.Kind, g.Reason), g.Index)
			}
		}
		if ro := c.Rollout; ro != nil {
			if ro.ScanIndex < 0 {
				add(ExceptionUnjudged, c.Chain, fmt.Sprintf("%s: promoted (rollout %s) with no passing image scan in its chain", name, ro.ID), ro.PromotedIndex)
			}
			if c.Rollback == nil && ro.ReleaseIndex < 0 {
				add(ExceptionUnjudged, c.Chain, fmt.Sprintf("%s: rollout %s had neither completed nor rolled back at the checkpoint", name, ro.ID), ro.PromotedIndex)
			}
		}
		if ns := c.NotServed; ns != nil {
			add(ExceptionUnjudged, c.Chain, fmt.Sprintf("%s: never served by stage %s (%s): not checked there, not promoted", name, ns.Stage, ns.Reason), ns.Index)
		}
		for _, iv := range c.Interventions {
			if iv.Action == "abort" && c.Rollback != nil && c.Rollback.Manual {
				continue // stated with the rollback below
			}
			text := fmt.Sprintf("%s: %s by %s via %s (%s to %s)", name, iv.Action, iv.Who, iv.Via, iv.PhaseBefore, iv.PhaseAfter)
			if iv.Reason != "" {
				text += ": " + iv.Reason
			}
			add(ExceptionManual, c.Chain, text, iv.Index)
		}
		if rb := c.Rollback; rb != nil {
			if rb.Manual {
				who, idx := "; the ledger does not record who", []int64{rb.Index}
				for _, iv := range c.Interventions {
					if iv.Action == "abort" {
						who, idx = fmt.Sprintf(" by %s via %s", iv.Who, iv.Via), []int64{rb.Index, iv.Index}
					}
				}
				add(ExceptionManual, c.Chain, fmt.Sprintf("%s: aborted by an operator at %d%% (%s)%s", name, rb.TrafficAtAbort, rb.Description, who), idx...)
			} else {
				idx := []int64{rb.Index}
				if rb.AnomalyIndex >= 0 {
					idx = []int64{rb.AnomalyIndex, rb.Index}
				}
				add(ExceptionFailed, c.Chain, fmt.Sprintf("%s: canary at %d%% failed its analysis and was rolled back: %s", name, rb.TrafficAtAbort, rb.Trigger), idx...)
			}
			if c.Page == nil {
				add(ExceptionUnjudged, c.Chain, fmt.Sprintf("%s: rolled back, but no page is recorded", name), rb.Index)
			}
		}
	}
	for _, f := range lone {
		switch f.kind {
		case "deadletter", "unreadable":
			add(ExceptionGap, "", fmt.Sprintf("entry %d is not a readable event: %s", f.index, f.text), f.index)
		case events.KindAnomaly:
			a, err := events.AnomalyOf(*f.ev)
			if err != nil {
				continue
			}
			switch a.Target {
			case events.TargetLedger:
				add(ExceptionGap, "", "the ledger reported on its own record: "+f.text, f.index)
			case events.TargetNone:
				add(ExceptionUnacted, "", fmt.Sprintf("%s in %s: %s (nothing live matched; recorded, not acted on)", a.App, a.Environment, f.text), f.index)
			}
		}
	}
	// Stream messages with no entry between two adjacent entries the
	// report carries.
	for i := 1; i < len(facts); i++ {
		a, b := facts[i-1], facts[i]
		if b.index != a.index+1 || !inPeriod(b.e, in.Period) || b.e.StreamSeq <= a.e.StreamSeq+1 {
			continue
		}
		add(ExceptionGap, "", fmt.Sprintf("RAMPART stream messages %d to %d, between entries %d and %d, have no ledger entry: repeats of recorded events, or messages gone before the ledger recorded them", a.e.StreamSeq+1, b.e.StreamSeq-1, a.index, b.index), a.index, b.index)
	}
	if !r.Coverage.Complete && r.Coverage.First >= 0 {
		add(ExceptionGap, "", "coverage: "+r.Coverage.Note)
	}
	slices.SortStableFunc(r.Exceptions, func(a, b Exception) int { return int(firstIndex(a.Indexes) - firstIndex(b.Indexes)) })
}

func firstIndex(idx []int64) int64 {
	if len(idx) == 0 {
		return 1 << 62
	}
	return idx[0]
}

func orNone(s string) string {
	if s == "" {
		return "not recorded"
	}
	return s
}

// changeName is how the report names a change in a sentence.
func changeName(c Change) string {
	name := c.Subject
	if c.Version != "" {
		name = c.App + " " + c.Version
		if c.App == "" {
			name = c.Subject + " (" + c.Version + ")"
		}
	}
	return name
}

func notes(cov Coverage) []string {
	return []string{
		"Coverage: " + cov.Note + ".",
		"Operators are named by their credential, not as persons: each intervention records the role and a fingerprint of the token that asked (\"operator sha256:…\"), so who held that token at the time is for the token's custodian to show. Interventions applied before the deployer recorded them appear only as a rollback with origin \"operator\", without who performed it.",
		"A canary step's passing analysis is not recorded: the watcher records anomalies, not passing measurements, so a step passed when the rollout's next step followed with no anomaly recorded against it.",
		"Waivers are shown with owner and expiry where the verdict records them; verdicts signed before they did state only how many findings were waived.",
		"Every statement is derived from the entries in this report; `rampart report verify` checks each entry's signature and inclusion proof against the signed checkpoint and re-derives the report.",
	}
}
