package attest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	vsa "github.com/in-toto/attestation/go/predicates/vsa/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Verification results of a summary.
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Level is the verified level a passing gate decision claims: not a SLSA
// track level (the gate does not check build provenance), so a custom value,
// which the VSA specification allows when it does not start with SLSA_.
const Level = "RAMPART_VULN_GATE_PASSED"

// Summary is the gate decision to sign as a Verification Summary.
type Summary struct {
	Subject Subject
	// Verifier identifies who decided, e.g. the scanner's CloudEvents source.
	Verifier string
	// ResourceURI is the artifact as the verdict names it (its purl).
	ResourceURI string
	Passed      bool
	Time        time.Time
	// PolicyURI and PolicyDigest (hex SHA-256) name the gate policy.
	PolicyURI    string
	PolicyDigest string
	// Input is the signed vulnerability attestation the decision read.
	Input json.RawMessage
}

// Summary signs a gate decision.
func (s *Signer) Summary(ctx context.Context, sum Summary) (json.RawMessage, error) {
	if sum.Verifier == "" || sum.ResourceURI == "" || sum.PolicyURI == "" || len(sum.PolicyDigest) != 64 {
		return nil, fmt.Errorf("verification summary of %s: verifier, resource URI, policy URI and a SHA-256 policy digest are required", sum.Subject.Name)
	}
	p := &vsa.VerificationSummary{
		Verifier:           &vsa.VerificationSummary_Verifier{Id: sum.Verifier},
		TimeVerified:       timestamppb.New(sum.Time),
		ResourceUri:        sum.ResourceURI,
		Policy:             &vsa.VerificationSummary_Policy{Uri: sum.PolicyURI, Digest: map[string]string{"sha256": sum.PolicyDigest}},
		VerificationResult: Failed,
		VerifiedLevels:     []string{Failed},
		SlsaVersion:        "1.0",
	}
	if sum.Passed {
		p.VerificationResult, p.VerifiedLevels = Passed, []string{Level}
	}
	if len(sum.Input) > 0 {
		p.InputAttestations = []*vsa.VerificationSummary_InputAttestation{{Uri: PredicateVuln, Digest: map[string]string{"sha256": Digest(sum.Input)}}}
	}
	b, err := protojson.Marshal(p)
	if err != nil {
		return nil, err
	}
	return s.sign(ctx, sum.Subject, PredicateVSA, b)
}

// Expect is what a verification summary must say for an artifact to be
// promoted.
type Expect struct {
	// Digest of the artifact ("sha256:<hex>"): a subject must carry it.
	Digest string
	// ResourceURI is the artifact's purl as the verdict names it.
	ResourceURI string
	// Policies are the hex SHA-256 digests of the gate policies accepted.
	Policies []string
}

// VerifySummary checks a Verification Summary envelope: the signature, the
// statement, that it is about the expected artifact, that it PASSED, and
// that the policy is one the caller accepts. It returns the summary.
func (v *Verifier) VerifySummary(ctx context.Context, envelope []byte, want Expect) (*vsa.VerificationSummary, error) {
	st, err := v.Statement(ctx, envelope, PredicateVSA)
	if err != nil {
		return nil, err
	}
	if !About(st, want.Digest) {
		return nil, fmt.Errorf("%w: want %s", ErrSubject, want.Digest)
	}
	b, err := predicateJSON(st)
	if err != nil {
		return nil, err
	}
	p := &vsa.VerificationSummary{}
	if err := protojson.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%w: verification summary: %v", ErrStatement, err)
	}
	if p.GetResourceUri() != want.ResourceURI {
		return nil, fmt.Errorf("%w: resource %q, want %q", ErrSubject, p.GetResourceUri(), want.ResourceURI)
	}
	if p.GetVerificationResult() != Passed {
		return nil, fmt.Errorf("%w: %q", ErrNotPassed, p.GetVerificationResult())
	}
	if d := p.GetPolicy().GetDigest()["sha256"]; !slices.Contains(want.Policies, d) {
		return nil, fmt.Errorf("%w: %s sha256:%s", ErrPolicy, p.GetPolicy().GetUri(), d)
	}
	return p, nil
}
