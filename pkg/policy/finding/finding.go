// Package finding is the scanner's vocabulary for vulnerabilities found in an
// artifact: severities, findings and counts.
//
// It is kept free of Trivy so that the gate and the event mapping compile in
// seconds; internal/scan converts Trivy's results into these types.
package finding

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity orders vulnerabilities; the zero value is Unknown, the lowest.
type Severity int

// Severities, lowest first, so they compare with < and >.
const (
	Unknown Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// String is the upper-case name Trivy and most advisories use, e.g. "CRITICAL".
func (s Severity) String() string {
	if s < Unknown || int(s) >= len(severityNames) {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts a severity name in any case ("critical", "HIGH").
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown severity %q (want one of %s)", name, strings.Join(severityNames[:], ", "))
}

// MarshalText encodes the severity by name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Finding is one vulnerability in one installed package.
type Finding struct {
	ID               string   `json:"id"`      // CVE-2025-9230, GHSA-…
	Package          string   `json:"package"` // installed package name, e.g. libcrypto3, golang.org/x/net
	InstalledVersion string   `json:"installed_version"`
	FixedVersion     string   `json:"fixed_version,omitempty"` // empty when no fix is published
	Severity         Severity `json:"severity"`
	Title            string   `json:"title,omitempty"`
	PURL             string   `json:"purl,omitempty"`   // package URL of the installed package
	Target           string   `json:"target,omitempty"` // where it was found: the OS, or a file such as usr/local/bin/app
}

// Fixed reports whether a fixed version is published.
func (f Finding) Fixed() bool { return f.FixedVersion != "" }

// Counts is the number of findings at each severity.
type Counts struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Unknown  int `json:"unknown"`
}

// Count tallies findings by severity.
func Count(fs []Finding) Counts {
	var c Counts
	for _, f := range fs {
		switch f.Severity {
		case Critical:
			c.Critical++
		case High:
			c.High++
		case Medium:
			c.Medium++
		case Low:
			c.Low++
		default:
			c.Unknown++
		}
	}
	return c
}

// Total is the number of findings counted.
func (c Counts) Total() int { return c.Critical + c.High + c.Medium + c.Low + c.Unknown }

// Sort orders findings most severe first, then by id, package and installed
// version, so reports and events are stable.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity, a.Severity),
			cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.Package, b.Package),
			cmp.Compare(a.InstalledVersion, b.InstalledVersion),
			cmp.Compare(a.Target, b.Target),
		)
	})
}

// Top returns the first n findings of fs after sorting a copy; fs is left as
// it was.
func Top(fs []Finding, n int) []Finding {
	out := slices.Clone(fs)
	Sort(out)
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}
