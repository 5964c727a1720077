// Package secrets finds credentials in file contents: Trivy's secret scanner
// (pkg/fanal/secret, with its built-in rules for cloud keys, tokens and
// private keys) plus a high-entropy check of its own for generic tokens that
// no built-in rule names.
//
// It imports only Trivy's secret scanner, not the analyzer framework, so the
// pre-commit hook stays cheap to build and fast to run. Commit scans and
// `rampart precommit` both use it, so they agree on what a secret is; it is
// public for that reason (decision 0009): the hook runs offline on a
// developer's machine, where no scanner service is there to ask.
package secrets

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/aquasecurity/trivy/pkg/fanal/secret"
)

// HighEntropyRuleID names findings of the entropy check. Trivy's built-in
// rules only match tokens with a known shape (a vendor prefix, a fixed
// length); a random string assigned to something called token, secret,
// password or key has none, so this check covers it.
const HighEntropyRuleID = "high-entropy-token"

// Finding is one secret in one file.
type Finding struct {
	Path     string // as given to Scan, slash-separated
	Line     int    // 1-based line of the match
	RuleID   string // Trivy's rule id (e.g. aws-access-key-id) or HighEntropyRuleID
	Severity string // CRITICAL, HIGH, MEDIUM, LOW
	Title    string
	// Match is the matching line with the secret masked, as Trivy prints it.
	Match string
}

// Scanner finds secrets; the zero value is not usable, use New. It is safe
// for concurrent use.
type Scanner struct {
	trivy secret.Scanner
}

// New returns a Scanner with Trivy's built-in rules and allow rules.
func New() *Scanner {
	return &Scanner{trivy: secret.NewScanner(nil)}
}

// MaxFileSize bounds the contents Scan reads (bytes). Larger files are
// scanned up to this size: secrets live in source and configuration, not in
// multi-megabyte blobs.
const MaxFileSize = 10 << 20

// Scan returns the secrets in content, read as the file at path. The path
// decides Trivy's skip patterns (lock files, images, .git, node_modules) and
// path allow rules (tests, examples, vendor/, *.md), as in `trivy fs`.
// Binary content (a NUL byte in the first 8 KiB) is skipped.
func (s *Scanner) Scan(path string, content io.Reader) ([]Finding, error) {
	if s.trivy.IsSkipped(path) {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(content, MaxFileSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if isBinary(data) {
		return nil, nil
	}
	res := s.trivy.Scan(secret.ScanArgs{FilePath: path, Content: bytes.NewReader(data)})
	var out []Finding
	for _, f := range res.Findings {
		out = append(out, Finding{Path: path, Line: f.StartLine, RuleID: f.RuleID, Severity: f.Severity, Title: f.Title, Match: f.Match})
	}
	// The entropy check honours Trivy's path allow rules (tests, examples,
	// vendored code), so both halves skip the same files.
	if !s.trivy.AllowPath(path) {
		out = append(out, s.entropyFindings(path, data, out)...)
	}
	slices.SortFunc(out, func(a, b Finding) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.RuleID, b.RuleID)
	})
	return out, nil
}

// SkipsDir reports whether everything under the directory dir (relative,
// slash-separated) is skipped by Trivy's skip patterns (e.g. node_modules),
// so a walk need not enter it.
func (s *Scanner) SkipsDir(dir string) bool {
	return s.trivy.IsSkipped(dir + "/x")
}

func isBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), 8<<10)], 0) >= 0
}

// assignment matches a value assigned to a name that says it is a secret:
// `api_token = "…"`, `SECRET: …`, `"password": "…"`, `export DB_KEY=…`.
// The name must contain one of the words; the value is a run of 20 or more
// base64, base64url or hex characters. A dot ends the value, so references
// such as process.env.API_TOKEN or module.iam.key_output are not values.
var assignment = regexp.MustCompile(`(?i)([a-z0-9_.-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth)[a-z0-9_.-]*)["']?\s*(?:=|:|:=)\s*["']?([A-Za-z0-9+/=_\-]{20,})`)

// Entropy thresholds in bits per character. A random base64 string of 20+
// characters scores above 4.2; hex (16 symbols) at most 4.0, random hex
// usually above 3.3; English words and identifiers stay well below both.
const (
	minEntropyBase64 = 4.2
	minEntropyHex    = 3.3
)

// entropyFindings reports high-entropy values assigned to secret-sounding
// names, skipping lines a Trivy rule already reported.
func (s *Scanner) entropyFindings(path string, data []byte, already []Finding) []Finding {
	var out []Finding
	for i, line := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		if slices.ContainsFunc(already, func(f Finding) bool { return f.Line == lineNo }) {
			continue
		}
		for _, m := range assignment.FindAllStringSubmatchIndex(line, -1) {
			value := line[m[4]:m[5]]
			// Trivy's allow rules for matches (e.g. anything containing
			// "example") apply here too.
			if !highEntropy(value) || s.trivy.Allow(value) {
				continue
			}
			out = append(out, Finding{
				Path:     path,
				Line:     lineNo,
				RuleID:   HighEntropyRuleID,
				Severity: "HIGH",
				Title:    "High-entropy token assigned to " + line[m[2]:m[3]],
				Match:    strings.TrimSpace(line[:m[4]] + strings.Repeat("*", len(value)) + line[m[5]:]),
			})
			break // one finding per line is enough to stop a commit
		}
	}
	return out
}

// highEntropy reports whether v looks random: Shannon entropy over its
// characters above the threshold for its alphabet, and a mix of character
// classes (so "aaaaaaaaaaaaaaaaaaaaaaaa" or a long lower-case word is not).
func highEntropy(v string) bool {
	if isHex(v) {
		return shannon(v) >= minEntropyHex
	}
	var lower, upper, digit bool
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit} {
		if b {
			classes++
		}
	}
	return classes >= 2 && shannon(v) >= minEntropyBase64
}

func isHex(v string) bool {
	for _, r := range v {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// shannon is the Shannon entropy of s in bits per character.
func shannon(s string) float64 {
	if s == "" {
		return 0
	}
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	h := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h
}
