package gate

import (
	"fmt"
	"slices"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
)

// Outcome is the gate's verdict on an artifact.
type Outcome string

const (
	// Pass: nothing blocks; the artifact may be promoted.
	Pass Outcome = "pass"
	// Blocked: at least one finding blocks under the policy.
	Blocked Outcome = "blocked"
	// Error: the artifact could not be pulled or scanned. It blocks
	// promotion like Blocked does: an unscanned artifact never passes.
	Error Outcome = "error"
)

// Decision is the outcome with everything that led to it.
type Decision struct {
	Outcome Outcome
	// Reasons says, one line each, why the outcome is what it is.
	Reasons []string
	// Blocking are the findings that block, most severe first.
	Blocking []finding.Finding
	// Waived are findings that would block but an unexpired waiver accepts.
	Waived []Waived
	// Unfixed are findings that would block but were ignored because no fix
	// is published and the policy ignores unfixed vulnerabilities.
	Unfixed []finding.Finding
	// PolicyVersion is the Version of the policy applied.
	PolicyVersion string
}

// Waived is a finding accepted by a waiver.
type Waived struct {
	Finding finding.Finding
	Waiver  Waiver
}

// WaiverRecords are the waivers the decision applied, as a verdict records
// them (one per waived finding).
func (d Decision) WaiverRecords() []events.Waiver {
	var out []events.Waiver
	for _, w := range d.Waived {
		out = append(out, events.Waiver{ID: w.Waiver.ID, Package: w.Waiver.Package, Owner: w.Waiver.Owner,
			Expires: w.Waiver.Expires.UTC(), Reason: w.Waiver.Reason})
	}
	return out
}

// Evaluate applies the policy to a scan's findings at time now (the clock is
// the caller's, so expiry is testable and every replica agrees). A waiver
// applies while now is before its expiry; an expired waiver is ignored and
// named in the reasons.
func (p *Policy) Evaluate(findings []finding.Finding, now time.Time) Decision {
	d := Decision{Outcome: Pass, PolicyVersion: p.Version}
	sorted := finding.Top(findings, -1)
	for _, f := range sorted {
		if !slices.Contains(p.BlockOn, f.Severity) {
			continue
		}
		if p.IgnoreUnfixed && !f.Fixed() {
			d.Unfixed = append(d.Unfixed, f)
			continue
		}
		w, ok := p.waiverFor(f)
		if ok && now.Before(w.Expires) {
			d.Waived = append(d.Waived, Waived{Finding: f, Waiver: w})
			continue
		}
		d.Blocking = append(d.Blocking, f)
		reason := describe(f)
		if ok {
			reason += fmt.Sprintf("; waiver by %s expired %s", w.Owner, w.Expires.UTC().Format(time.RFC3339))
		}
		d.Reasons = append(d.Reasons, reason)
	}
	if len(d.Blocking) > 0 {
		d.Outcome = Blocked
		return d
	}
	switch {
	case len(d.Waived) > 0 || len(d.Unfixed) > 0:
		d.Reasons = append(d.Reasons, fmt.Sprintf("no blocking findings (%d waived, %d unfixed ignored)", len(d.Waived), len(d.Unfixed)))
	default:
		d.Reasons = append(d.Reasons, "no findings at "+severityList(p.BlockOn))
	}
	return d
}

// ScanFailed is the decision for an artifact whose scan did not complete.
func ScanFailed(err error, policyVersion string) Decision {
	return Decision{
		Outcome:       Error,
		Reasons:       []string{"scan did not complete: " + err.Error()},
		PolicyVersion: policyVersion,
	}
}

func (p *Policy) waiverFor(f finding.Finding) (Waiver, bool) {
	for _, w := range p.Waivers {
		if w.ID == f.ID && w.Package == f.Package {
			return w, true
		}
	}
	return Waiver{}, false
}

// describe is a one-line account of a blocking finding, e.g.
// "CVE-2025-9230 (CRITICAL) in libcrypto3 3.5.1-r0, fixed in 3.5.4-r0".
func describe(f finding.Finding) string {
	s := fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package, f.InstalledVersion)
	if f.Fixed() {
		return s + ", fixed in " + f.FixedVersion
	}
	return s + ", no fix published"
}

func severityList(sevs []finding.Severity) string {
	if len(sevs) == 0 {
		return "any blocking severity (none configured)"
	}
	s := ""
	for i, sev := range sevs {
		if i > 0 {
			s += "/"
		}
		s += sev.String()
	}
	return s
}
