// Package attest writes and checks Rampart's scan verdicts as standard
// attestations: in-toto v1 Statements in DSSE envelopes signed with the
// scanner's Ed25519 verdict key. The image scan is a cosign vulnerability
// predicate (what `cosign verify-attestation --type vuln` reads), the gate
// decision a SLSA Verification Summary Attestation naming the policy's URI
// and digest. Anyone with the scanner's public key can check them with the
// DSSE and in-toto libraries alone; nothing here is Rampart's own format.
package attest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// The media and predicate types of the attestations.
const (
	// PayloadType is the DSSE payload type of an in-toto Statement.
	PayloadType = "application/vnd.in-toto+json"
	// PredicateVuln is cosign's vulnerability scan predicate.
	PredicateVuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
	// PredicateVSA is the SLSA Verification Summary Attestation.
	PredicateVSA = "https://slsa.dev/verification_summary/v1"
)

// Errors a verifier branches on (errors.Is).
var (
	// ErrSignature: the envelope is not signed by the expected key, or is
	// not a DSSE envelope of an in-toto Statement.
	ErrSignature = errors.New("attestation signature does not verify")
	// ErrStatement: the signed statement is malformed or of another type.
	ErrStatement = errors.New("attestation statement is invalid")
	// ErrSubject: the statement is about another artifact.
	ErrSubject = errors.New("attestation subject does not match the artifact")
	// ErrPolicy: the decision was made under a policy the verifier does not
	// accept.
	ErrPolicy = errors.New("attestation policy is not a known policy")
	// ErrNotPassed: the verification summary says the artifact failed.
	ErrNotPassed = errors.New("attestation verification result is not PASSED")
)

// Subject is the artifact an attestation is about: an image by repository
// name and manifest digest ("sha256:<hex>").
type Subject struct {
	Name   string
	Digest string
}

func (s Subject) descriptor() (*ita.ResourceDescriptor, error) {
	alg, hexDigest, ok := strings.Cut(s.Digest, ":")
	if !ok || alg != "sha256" {
		return nil, fmt.Errorf("subject %s: digest %q is not sha256:<hex>", s.Name, s.Digest)
	}
	rd := &ita.ResourceDescriptor{Name: s.Name, Digest: map[string]string{alg: hexDigest}}
	if err := rd.Validate(); err != nil {
		return nil, fmt.Errorf("subject %s: %w", s.Name, err)
	}
	return rd, nil
}

// KeyID is the key id envelopes carry for pub: its SSH SHA-256 fingerprint,
// as the DSSE library derives it for a verifier without one.
func KeyID(pub ed25519.PublicKey) (string, error) { return dsse.SHA256KeyID(pub) }

// Signer signs statements with the scanner's key.
type Signer struct {
	env *dsse.EnvelopeSigner
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	sv, err := signerVerifier(key.Public().(ed25519.PublicKey), key)
	if err != nil {
		return nil, err
	}
	env, err := dsse.NewEnvelopeSigner(sv)
	if err != nil {
		return nil, err
	}
	return &Signer{env: env}, nil
}

func signerVerifier(pub ed25519.PublicKey, priv ed25519.PrivateKey) (*signerverifier.ED25519SignerVerifier, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("attestation key: not a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	key := &signerverifier.SSLibKey{KeyType: signerverifier.ED25519KeyType, Scheme: signerverifier.ED25519KeyType, KeyID: id,
		KeyVal: signerverifier.KeyVal{Public: hex.EncodeToString(pub)}}
	if priv != nil {
		key.KeyVal.Private = hex.EncodeToString(priv)
	}
	return signerverifier.NewED25519SignerVerifierFromSSLibKey(key)
}

// sign wraps predicate (any JSON-encodable value) in a Statement about subj
// and returns the DSSE envelope as JSON.
func (s *Signer) sign(ctx context.Context, subj Subject, predicateType string, predicate []byte) (json.RawMessage, error) {
	rd, err := subj.descriptor()
	if err != nil {
		return nil, err
	}
	pred := &structpb.Struct{}
	if err := protojson.Unmarshal(predicate, pred); err != nil {
		return nil, fmt.Errorf("%s predicate: %w", predicateType, err)
	}
	st := &ita.Statement{Type: ita.StatementTypeUri, Subject: []*ita.ResourceDescriptor{rd}, PredicateType: predicateType, Predicate: pred}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("statement: %w", err)
	}
	body, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	env, err := s.env.SignPayload(ctx, PayloadType, body)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", predicateType, err)
	}
	return json.Marshal(env)
}

// Verifier checks envelopes against the scanner's public key.
type Verifier struct {
	env *dsse.EnvelopeVerifier
}

// NewVerifier returns a verifier that accepts only signatures by pub.
func NewVerifier(pub ed25519.PublicKey) (*Verifier, error) {
	sv, err := signerVerifier(pub, nil)
	if err != nil {
		return nil, err
	}
	env, err := dsse.NewEnvelopeVerifier(sv)
	if err != nil {
		return nil, err
	}
	return &Verifier{env: env}, nil
}

// Statement checks an envelope's signature and returns its statement, which
// must be a valid in-toto v1 Statement with the given predicate type.
func (v *Verifier) Statement(ctx context.Context, envelope []byte, predicateType string) (*ita.Statement, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("%w: not a DSSE envelope: %v", ErrSignature, err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrSignature, env.PayloadType, PayloadType)
	}
	_, body, err := v.env.VerifyAndDecode(ctx, &env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return decodeStatement(body, predicateType)
}

// Open decodes an envelope's statement WITHOUT checking its signature: for
// reading recorded history (what-if replay), never for deciding anything.
func Open(envelope []byte, predicateType string) (*ita.Statement, error) {
	var env dsse.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("%w: not a DSSE envelope: %v", ErrStatement, err)
	}
	body, err := env.DecodeB64Payload()
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrStatement, err)
	}
	return decodeStatement(body, predicateType)
}

func decodeStatement(body []byte, predicateType string) (*ita.Statement, error) {
	st := &ita.Statement{}
	if err := protojson.Unmarshal(body, st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if st.GetType() != ita.StatementTypeUri {
		return nil, fmt.Errorf("%w: statement type %q, want %q", ErrStatement, st.GetType(), ita.StatementTypeUri)
	}
	if st.GetPredicateType() != predicateType {
		return nil, fmt.Errorf("%w: predicate type %q, want %q", ErrStatement, st.GetPredicateType(), predicateType)
	}
	return st, nil
}

// About reports whether digest ("sha256:<hex>") is one of st's subjects.
func About(st *ita.Statement, digest string) bool {
	alg, want, ok := strings.Cut(digest, ":")
	if !ok {
		return false
	}
	for _, rd := range st.GetSubject() {
		if got, ok := rd.GetDigest()[alg]; ok && strings.EqualFold(got, want) {
			return true
		}
	}
	return false
}

// predicateJSON re-encodes a statement's predicate for json.Unmarshal.
func predicateJSON(st *ita.Statement) ([]byte, error) {
	return protojson.Marshal(st.GetPredicate())
}

// Digest is the hex SHA-256 of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// PredicateTypeOf is the predicate type an envelope's statement claims,
// unverified ("" when it is not an envelope of a statement): for picking
// which envelope to verify, never for trusting one.
func PredicateTypeOf(envelope []byte) string {
	var env dsse.Envelope
	if json.Unmarshal(envelope, &env) != nil || env.PayloadType != PayloadType {
		return ""
	}
	body, err := env.DecodeB64Payload()
	if err != nil {
		return ""
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(body, &st) != nil {
		return ""
	}
	return st.PredicateType
}
