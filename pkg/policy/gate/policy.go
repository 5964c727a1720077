// Package gate decides whether scan findings block an artifact: the policy
// file (which severities block, waivers with an owner and an expiry, whether
// unfixed vulnerabilities count) and its evaluation.
package gate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

// Policy is a parsed, validated gate policy.
//
// The file format:
//
//	block_on: [CRITICAL, HIGH]   # severities that block; this is the default
//	ignore_unfixed: false        # true: findings without a fixed version never block
//	waivers:
//	  - id: CVE-2025-9230        # vulnerability id
//	    package: libcrypto3      # installed package it applies to
//	    owner: alice@example.com # who accepted the risk
//	    expires: 2026-09-30      # date (valid through that day, UTC) or RFC 3339 time
//	    reason: not reachable from the TLS code path we use
type Policy struct {
	BlockOn       []finding.Severity
	IgnoreUnfixed bool
	Waivers       []Waiver
	// Version identifies the policy a decision was made under: the sha256
	// of the file's bytes, or "default".
	Version string
	// URI is where the policy was read from (file://…), or DefaultURI.
	URI string
}

// Waiver accepts one vulnerability in one package until it expires.
type Waiver struct {
	ID      string
	Package string
	Owner   string
	Expires time.Time // the waiver applies while now is before Expires
	Reason  string
	Line    int // where it is declared, for messages
}

// Default is the policy used when none is configured: block on Critical or
// High, no waivers. DefaultSource is the same policy as a file.
func Default() *Policy {
	return &Policy{BlockOn: []finding.Severity{finding.Critical, finding.High}, Version: "default", URI: DefaultURI}
}

// DefaultSource is the default policy written as a policy file; its digest
// names the default policy in attestations.
const DefaultSource = "block_on: [CRITICAL, HIGH]\n"

// DefaultURI names the default policy in attestations.
const DefaultURI = "urn:rampart:gate-policy:default"

// Digest is the hex SHA-256 of the policy file's bytes (of DefaultSource for
// the default policy): the policy digest attestations carry.
func (p *Policy) Digest() string {
	if d, ok := strings.CutPrefix(p.Version, "sha256:"); ok {
		return d
	}
	sum := sha256.Sum256([]byte(DefaultSource))
	return hex.EncodeToString(sum[:])
}

// Problem is one thing wrong with a policy file, with where it is.
type Problem struct {
	File   string
	Line   int
	Column int
	Field  string // path to the field, e.g. waivers[1].expires; empty for the document
	Msg    string
}

func (p Problem) String() string {
	loc := fmt.Sprintf("%s:%d", p.File, p.Line)
	if p.Column > 0 {
		loc += fmt.Sprintf(":%d", p.Column)
	}
	if p.Field == "" {
		return loc + ": " + p.Msg
	}
	return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Msg)
}

// PolicyError lists every problem found in a policy file.
type PolicyError struct {
	Problems []Problem
}

func (e *PolicyError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid policy: " + strings.Join(lines, "; ")
}

// LoadFile reads and parses a policy file.
func LoadFile(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := Parse(path, b)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		p.URI = (&url.URL{Scheme: "file", Path: abs}).String()
	}
	return p, nil
}

// Parse parses a policy. file names the source in error messages. Unknown
// fields, duplicate keys, bad severities or dates, and waivers missing an id,
// package, owner or expiry are errors; the returned error is an *PolicyError
// listing all of them with file:line:column and the field path. An empty
// document is the default policy.
func Parse(file string, data []byte) (*Policy, error) {
	p := Default()
	sum := sha256.Sum256(data)
	p.Version = "sha256:" + hex.EncodeToString(sum[:])
	p.URI = "urn:rampart:gate-policy:" + p.Version

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &PolicyError{Problems: []Problem{syntaxProblem(file, err)}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return p, nil // empty file, or only "---"
	}
	d := &decoder{file: file}
	d.policy(doc.Content[0], p)
	if len(d.problems) > 0 {
		return nil, &PolicyError{Problems: d.problems}
	}
	return p, nil
}

// syntaxProblem turns a YAML syntax error ("yaml: line 3: …") into a Problem.
func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if n, rest, ok := strings.Cut(msg, ": "); ok {
		if _, scanErr := fmt.Sscanf(n, "line %d", &line); scanErr == nil {
			msg = rest
		}
	}
	return Problem{File: file, Line: line, Msg: msg}
}

type decoder struct {
	file     string
	problems []Problem
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// fields walks a mapping node, reporting non-mappings, duplicate keys and keys
// not in known; visit is called for each known key with its value node.
func (d *decoder) fields(n *yaml.Node, path string, known []string, visit func(key string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fieldPath := join(path, k.Value)
		switch {
		case seen[k.Value]:
			d.fail(k, fieldPath, "duplicate field")
		case !slices.Contains(known, k.Value):
			d.fail(k, fieldPath, "unknown field (known: %s)", strings.Join(known, ", "))
		default:
			seen[k.Value] = true
			visit(k.Value, v)
		}
	}
}

func (d *decoder) policy(n *yaml.Node, p *Policy) {
	d.fields(n, "", []string{"block_on", "ignore_unfixed", "waivers"}, func(key string, v *yaml.Node) {
		switch key {
		case "block_on":
			p.BlockOn = d.severities(v, "block_on")
		case "ignore_unfixed":
			p.IgnoreUnfixed = d.boolean(v, "ignore_unfixed")
		case "waivers":
			p.Waivers = d.waivers(v, "waivers")
		}
	})
}

func (d *decoder) severities(n *yaml.Node, path string) []finding.Severity {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list of severities, got %s", kindName(n))
		return nil
	}
	var out []finding.Severity
	for i, item := range n.Content {
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		s, ok := d.str(item, itemPath)
		if !ok {
			continue
		}
		sev, err := finding.ParseSeverity(s)
		if err != nil {
			d.fail(item, itemPath, "%v", err)
			continue
		}
		if slices.Contains(out, sev) {
			d.fail(item, itemPath, "%s listed twice", sev)
			continue
		}
		out = append(out, sev)
	}
	return out
}

func (d *decoder) waivers(n *yaml.Node, path string) []Waiver {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list of waivers, got %s", kindName(n))
		return nil
	}
	var out []Waiver
	seen := map[string]int{} // id+package -> index
	for i, item := range n.Content {
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		w := Waiver{Line: item.Line}
		set := map[string]bool{}
		d.fields(item, itemPath, []string{"id", "package", "owner", "expires", "reason"}, func(key string, v *yaml.Node) {
			fieldPath := join(itemPath, key)
			if key == "expires" {
				if t, ok := d.expiry(v, fieldPath); ok {
					w.Expires, set[key] = t, true
				}
				return
			}
			s, ok := d.str(v, fieldPath)
			if !ok {
				return
			}
			if strings.TrimSpace(s) == "" {
				d.fail(v, fieldPath, "must not be empty")
				return
			}
			set[key] = true
			switch key {
			case "id":
				w.ID = s
			case "package":
				w.Package = s
			case "owner":
				w.Owner = s
			case "reason":
				w.Reason = s
			}
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		for _, required := range []string{"id", "package", "owner", "expires"} {
			if !set[required] && !d.reported(join(itemPath, required)) {
				d.fail(item, join(itemPath, required), "required")
			}
		}
		if w.ID != "" && w.Package != "" {
			key := w.ID + "\x00" + w.Package
			if j, dup := seen[key]; dup {
				d.fail(item, itemPath, "waives %s in %s again (already waived by %s[%d])", w.ID, w.Package, path, j)
				continue
			}
			seen[key] = i
		}
		out = append(out, w)
	}
	return out
}

// reported says whether a problem was already recorded for field (so a
// present-but-invalid field is not also reported as missing).
func (d *decoder) reported(field string) bool {
	for _, p := range d.problems {
		if p.Field == field {
			return true
		}
	}
	return false
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.fail(n, path, "must be a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.fail(n, path, "must be true or false, got %s", kindName(n))
	}
	return b
}

// expiry accepts a date (2026-09-30: the waiver holds through that day, UTC)
// or an RFC 3339 time.
func (d *decoder) expiry(n *yaml.Node, path string) (time.Time, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.fail(n, path, "must be a date (2006-01-02) or RFC 3339 time, got %s", kindName(n))
		return time.Time{}, false
	}
	if t, err := time.Parse("2006-01-02", n.Value); err == nil {
		return t.AddDate(0, 0, 1), true
	}
	if t, err := time.Parse(time.RFC3339, n.Value); err == nil {
		return t, true
	}
	d.fail(n, path, "%q is not a date (2006-01-02) or RFC 3339 time", n.Value)
	return time.Time{}, false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an empty document"
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

var _ error = (*PolicyError)(nil)

// Problems returns the problems of an error from Parse or LoadFile, or nil if
// err is not a policy validation error.
func Problems(err error) []Problem {
	var e *PolicyError
	if errors.As(err, &e) {
		return e.Problems
	}
	return nil
}
