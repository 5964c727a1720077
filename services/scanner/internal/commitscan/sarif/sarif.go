// Package sarif reads SARIF 2.1.0 logs from other analysis tools (Semgrep,
// CodeQL, ZAP for DAST) and turns their results into scanner findings.
//
// Parsing is strict about what the scanner relies on: the document must be
// one JSON object of version 2.1.0, every member the scanner reads must have
// the type and value range the SARIF 2.1.0 schema gives it, and the members
// the schema requires (version, runs, tool.driver.name, result.message,
// reportingDescriptor.id) must be present. Members the scanner does not read
// (property bags, code flows, fixes, and so on) are allowed, as the schema
// allows them.
package sarif

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

// Version is the only SARIF version accepted.
const Version = "2.1.0"

// ErrInvalid is wrapped by every error about the document itself (as opposed
// to an I/O error), so a handler can answer 400.
var ErrInvalid = errors.New("invalid SARIF")

// Limits that keep a hostile document from costing more than a real one.
const (
	// MaxSize bounds the document (bytes); CodeQL logs of large
	// repositories run to a few megabytes.
	MaxSize = 32 << 20
	// MaxResults bounds the results across all runs.
	MaxResults = 100_000
	// maxTitle bounds the message text kept on a finding.
	maxTitle = 300
)

// Log is the subset of a SARIF log the scanner reads (SARIF 2.1.0 §3.13).
type Log struct {
	Version *string `json:"version"`
	Schema  string  `json:"$schema"`
	Runs    *[]Run  `json:"runs"`
}

// Run is one invocation of one tool (§3.14).
type Run struct {
	Tool    *Tool    `json:"tool"`
	Results []Result `json:"results"`
}

// Tool names the analysis tool (§3.18).
type Tool struct {
	Driver *ToolComponent `json:"driver"`
}

// ToolComponent is the tool's driver and the rules it ran (§3.19).
type ToolComponent struct {
	Name    *string               `json:"name"`
	Version string                `json:"version"`
	Rules   []ReportingDescriptor `json:"rules"`
}

// ReportingDescriptor is a rule (§3.49).
type ReportingDescriptor struct {
	ID                   *string              `json:"id"`
	Name                 string               `json:"name"`
	ShortDescription     *Message             `json:"shortDescription"`
	DefaultConfiguration *ReportingConfig     `json:"defaultConfiguration"`
	Properties           map[string]jsonValue `json:"properties"`
}

// ReportingConfig is a rule's default configuration (§3.50).
type ReportingConfig struct {
	Level string `json:"level"`
}

// Result is one thing the tool found (§3.27).
type Result struct {
	RuleID       string                  `json:"ruleId"`
	RuleIndex    *int                    `json:"ruleIndex"`
	Rule         *ReportingDescriptorRef `json:"rule"`
	Kind         string                  `json:"kind"`
	Level        string                  `json:"level"`
	Message      *Message                `json:"message"`
	Locations    []Location              `json:"locations"`
	Suppressions []Suppression           `json:"suppressions"`
}

// ReportingDescriptorRef points at a rule by id or index (§3.52).
type ReportingDescriptorRef struct {
	ID    string `json:"id"`
	Index *int   `json:"index"`
}

// Message is a text (§3.11); the scanner reads text only.
type Message struct {
	Text *string `json:"text"`
	ID   *string `json:"id"`
}

// Location is where a result was found (§3.28).
type Location struct {
	PhysicalLocation *PhysicalLocation `json:"physicalLocation"`
}

// PhysicalLocation is a file and a region in it (§3.29).
type PhysicalLocation struct {
	ArtifactLocation *ArtifactLocation `json:"artifactLocation"`
	Region           *Region           `json:"region"`
}

// ArtifactLocation is a file by URI (§3.4).
type ArtifactLocation struct {
	URI string `json:"uri"`
}

// Region is a part of a file (§3.30).
type Region struct {
	StartLine *int `json:"startLine"`
}

// Suppression says a result was accepted or is under review (§3.35).
type Suppression struct {
	Kind   string `json:"kind"`
	Status string `json:"status"`
}

// jsonValue keeps a property's raw JSON so its type can be checked when read.
type jsonValue = json.RawMessage

// Parse reads one SARIF 2.1.0 log from r. Errors about the document wrap
// ErrInvalid and say where the problem is (e.g. runs[0].results[3].level).
func Parse(r io.Reader) (*Log, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read SARIF: %w", err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	return ParseBytes(data)
}

// ParseBytes is Parse on a byte slice.
func ParseBytes(data []byte) (*Log, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var l Log
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the SARIF log", ErrInvalid)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &l, nil
}

var (
	levels = map[string]bool{"none": true, "note": true, "warning": true, "error": true}
	kinds  = map[string]bool{"notApplicable": true, "pass": true, "fail": true, "review": true, "open": true, "informational": true}
)

func (l *Log) validate() error {
	if l.Version == nil {
		return errors.New("version is required")
	}
	if *l.Version != Version {
		return fmt.Errorf("version %q is not %s", *l.Version, Version)
	}
	if l.Runs == nil {
		return errors.New("runs is required")
	}
	total := 0
	for i, run := range *l.Runs {
		at := fmt.Sprintf("runs[%d]", i)
		if run.Tool == nil || run.Tool.Driver == nil {
			return fmt.Errorf("%s.tool.driver is required", at)
		}
		if run.Tool.Driver.Name == nil || *run.Tool.Driver.Name == "" {
			return fmt.Errorf("%s.tool.driver.name is required", at)
		}
		for j, rule := range run.Tool.Driver.Rules {
			rat := fmt.Sprintf("%s.tool.driver.rules[%d]", at, j)
			if rule.ID == nil {
				return fmt.Errorf("%s.id is required", rat)
			}
			if rule.DefaultConfiguration != nil && rule.DefaultConfiguration.Level != "" && !levels[rule.DefaultConfiguration.Level] {
				return fmt.Errorf("%s.defaultConfiguration.level %q is not none, note, warning or error", rat, rule.DefaultConfiguration.Level)
			}
			if _, _, err := rule.securitySeverity(); err != nil {
				return fmt.Errorf("%s.properties: %w", rat, err)
			}
		}
		total += len(run.Results)
		if total > MaxResults {
			return fmt.Errorf("more than %d results", MaxResults)
		}
		for k, res := range run.Results {
			if err := res.validate(len(run.Tool.Driver.Rules)); err != nil {
				return fmt.Errorf("%s.results[%d]%w", at, k, err)
			}
		}
	}
	return nil
}

// validate checks a result; errors start with the member path after the
// result ("".level …) so the caller can prefix where the result is.
func (r Result) validate(rules int) error {
	if r.Message == nil || (r.Message.Text == nil && r.Message.ID == nil) {
		return errors.New(".message needs text or id")
	}
	if r.Level != "" && !levels[r.Level] {
		return fmt.Errorf(".level %q is not none, note, warning or error", r.Level)
	}
	if r.Kind != "" && !kinds[r.Kind] {
		return fmt.Errorf(".kind %q is not one of SARIF's result kinds", r.Kind)
	}
	checkIndex := func(what string, i *int) error {
		if i == nil || *i == -1 {
			return nil
		}
		if *i < -1 || *i >= rules {
			return fmt.Errorf(".%s %d is outside the run's %d rules", what, *i, rules)
		}
		return nil
	}
	if err := checkIndex("ruleIndex", r.RuleIndex); err != nil {
		return err
	}
	if r.Rule != nil {
		if err := checkIndex("rule.index", r.Rule.Index); err != nil {
			return err
		}
	}
	for i, loc := range r.Locations {
		if pl := loc.PhysicalLocation; pl != nil && pl.Region != nil && pl.Region.StartLine != nil && *pl.Region.StartLine < 1 {
			return fmt.Errorf(".locations[%d].physicalLocation.region.startLine %d is less than 1", i, *pl.Region.StartLine)
		}
	}
	return nil
}

// securitySeverity reads the rule's "security-severity" property (GitHub's
// convention, used by CodeQL and Semgrep): a CVSS-like score from 0.0 to
// 10.0 written as a string. ok is false when the rule has none.
func (d ReportingDescriptor) securitySeverity() (score float64, ok bool, err error) {
	raw, found := d.Properties["security-severity"]
	if !found {
		return 0, false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		// Some tools write the score as a number; the schema leaves property
		// bags untyped, so accept both.
		if nerr := json.Unmarshal(raw, &score); nerr != nil {
			return 0, false, fmt.Errorf("security-severity %s is neither a string nor a number", raw)
		}
	} else if score, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
		return 0, false, fmt.Errorf("security-severity %q is not a number", s)
	}
	if score < 0 || score > 10 {
		return 0, false, fmt.Errorf("security-severity %v is outside 0.0 to 10.0", score)
	}
	return score, true, nil
}

// HighScore is the security-severity at and above which a result is High.
const HighScore = 7.0

// Findings turns the log's results into findings. A result is High when its
// level is "error" or its rule's security-severity is at least 7.0; otherwise
// warning is Medium, note is Low and none is Unknown. Results that are not
// failures (kind pass, notApplicable, informational) and results with an
// accepted suppression are left out. Each finding's ID is the rule id; its
// Package and Target are the place, "file:line" (the tool when the result
// has no location), as for the scanner's own source findings; its Title is
// "tool: message".
func (l *Log) Findings() []finding.Finding {
	var out []finding.Finding
	for _, run := range *l.Runs {
		tool := *run.Tool.Driver.Name
		for _, res := range run.Results {
			if !res.counts() {
				continue
			}
			rule, hasRule := res.rule(run.Tool.Driver.Rules)
			where := cmp.Or(res.where(), tool)
			out = append(out, finding.Finding{
				ID:       res.ruleID(rule, hasRule),
				Package:  where,
				Severity: severity(res.level(rule, hasRule), rule, hasRule),
				Title:    tool + ": " + res.title(rule, hasRule),
				Target:   where,
			})
		}
	}
	finding.Sort(out)
	return out
}

// counts reports whether the result is a finding: a failure (or a result to
// review or still open) that nobody accepted.
func (r Result) counts() bool {
	switch r.Kind {
	case "pass", "notApplicable", "informational":
		return false
	}
	for _, s := range r.Suppressions {
		if s.Status == "" || s.Status == "accepted" {
			return false
		}
	}
	return true
}

// rule finds the result's rule: by ruleIndex, rule.index, then by id.
func (r Result) rule(rules []ReportingDescriptor) (ReportingDescriptor, bool) {
	for _, i := range []*int{r.RuleIndex, refIndex(r.Rule)} {
		if i != nil && *i >= 0 && *i < len(rules) {
			return rules[*i], true
		}
	}
	id := r.RuleID
	if id == "" && r.Rule != nil {
		id = r.Rule.ID
	}
	for _, d := range rules {
		if id != "" && *d.ID == id {
			return d, true
		}
	}
	return ReportingDescriptor{}, false
}

func refIndex(ref *ReportingDescriptorRef) *int {
	if ref == nil {
		return nil
	}
	return ref.Index
}

func (r Result) ruleID(rule ReportingDescriptor, ok bool) string {
	switch {
	case r.RuleID != "":
		return r.RuleID
	case r.Rule != nil && r.Rule.ID != "":
		return r.Rule.ID
	case ok:
		return *rule.ID
	}
	return "sarif-result"
}

// level is the result's effective level (SARIF 2.1.0 §3.27.10): its own,
// else its rule's default, else "warning".
func (r Result) level(rule ReportingDescriptor, ok bool) string {
	if r.Level != "" {
		return r.Level
	}
	if ok && rule.DefaultConfiguration != nil && rule.DefaultConfiguration.Level != "" {
		return rule.DefaultConfiguration.Level
	}
	return "warning"
}

func severity(level string, rule ReportingDescriptor, ok bool) finding.Severity {
	if level == "error" {
		return finding.High
	}
	if ok {
		// Validated by Parse.
		if score, has, _ := rule.securitySeverity(); has && score >= HighScore {
			return finding.High
		}
	}
	switch level {
	case "warning":
		return finding.Medium
	case "note":
		return finding.Low
	}
	return finding.Unknown
}

func (r Result) title(rule ReportingDescriptor, ok bool) string {
	t := ""
	switch {
	case r.Message.Text != nil:
		t = *r.Message.Text
	case ok && rule.ShortDescription != nil && rule.ShortDescription.Text != nil:
		t = *rule.ShortDescription.Text
	case r.Message.ID != nil:
		t = *r.Message.ID
	}
	t = strings.Join(strings.Fields(t), " ")
	if len(t) > maxTitle {
		t = strings.ToValidUTF8(t[:maxTitle], "") + "…"
	}
	return t
}

// where is "uri:line" of the first location, "uri" without a line, or empty.
func (r Result) where() string {
	for _, loc := range r.Locations {
		pl := loc.PhysicalLocation
		if pl == nil || pl.ArtifactLocation == nil || pl.ArtifactLocation.URI == "" {
			continue
		}
		if pl.Region != nil && pl.Region.StartLine != nil {
			return fmt.Sprintf("%s:%d", pl.ArtifactLocation.URI, *pl.Region.StartLine)
		}
		return pl.ArtifactLocation.URI
	}
	return ""
}
