package attest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	ita "github.com/in-toto/attestation/go/v1"
)

// Vuln is cosign's vulnerability scan predicate
// (https://cosign.sigstore.dev/attestation/vuln/v1, field names as cosign's
// CosignVulnPredicate writes them). Scanner.Result is Rampart's: every
// finding with its severity and fix state, so that a verdict can be judged
// again under another policy.
type Vuln struct {
	Invocation Invocation `json:"invocation"`
	Scanner    Scanner    `json:"scanner"`
	Metadata   Metadata   `json:"metadata"`
}

// Invocation says what started the scan.
type Invocation struct {
	Parameters any    `json:"parameters"`
	URI        string `json:"uri"`
	EventID    string `json:"event_id"`
	BuilderID  string `json:"builder.id"`
}

// Scanner is the scanner, its database and its result.
type Scanner struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
	DB      DB     `json:"db"`
	Result  Result `json:"result"`
}

// DB is the vulnerability database scanned against.
type DB struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
}

// Metadata is when the scan ran.
type Metadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}

// Result is what the scan found.
type Result struct {
	// Counts by lower-case severity, of every finding (also those left out
	// of Findings).
	Counts map[string]int `json:"counts"`
	// Findings, most severe first, at most MaxFindings.
	Findings []Finding `json:"findings"`
	// Omitted is how many findings did not fit (0: Findings is complete).
	Omitted int `json:"omitted,omitempty"`
}

// Finding is one vulnerability in one installed package.
type Finding struct {
	ID               string `json:"id"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installedVersion"`
	// FixedVersion is empty when no fix is published.
	FixedVersion string `json:"fixedVersion,omitempty"`
	// Severity is upper case: CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN.
	Severity string `json:"severity"`
	Title    string `json:"title,omitempty"`
}

// MaxFindings bounds the findings one attestation lists, so that a verdict
// stays well inside a NATS message (about 250 bytes each before base64).
const MaxFindings = 500

// Vuln signs the vulnerability scan of subj. Findings beyond MaxFindings
// are dropped and counted in Result.Omitted; callers pass them most severe
// first.
func (s *Signer) Vuln(ctx context.Context, subj Subject, v Vuln) (json.RawMessage, error) {
	if n := len(v.Scanner.Result.Findings); n > MaxFindings {
		v.Scanner.Result.Omitted += n - MaxFindings
		v.Scanner.Result.Findings = v.Scanner.Result.Findings[:MaxFindings]
	}
	if v.Scanner.Result.Findings == nil {
		v.Scanner.Result.Findings = []Finding{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.sign(ctx, subj, PredicateVuln, b)
}

// VulnOf reads the vulnerability predicate of a statement.
func VulnOf(st *ita.Statement) (Vuln, error) {
	if st.GetPredicateType() != PredicateVuln {
		return Vuln{}, fmt.Errorf("%w: predicate type %q, want %q", ErrStatement, st.GetPredicateType(), PredicateVuln)
	}
	b, err := predicateJSON(st)
	if err != nil {
		return Vuln{}, err
	}
	var v Vuln
	if err := json.Unmarshal(b, &v); err != nil {
		return Vuln{}, fmt.Errorf("%w: vuln predicate: %v", ErrStatement, err)
	}
	return v, nil
}
