package attest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rampartci/rampart/pkg/attest"
)

const (
	digest   = "sha256:4f7c5b6c0b0f1b3a6a3e8d1f0e2c9b7a5d3c1e0f2a4b6c8d0e1f3a5b7c9d1e3f"
	purl     = "pkg:oci/shop@" + digest + "?repository_url=127.0.0.1:5000/shop"
	policyV1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

var subject = attest.Subject{Name: "127.0.0.1:5000/shop", Digest: digest}

// plainVerifier is an Ed25519 dsse.Verifier written against the DSSE
// library's interface only, so the checks below use no code of Rampart's.
type plainVerifier struct{ pub ed25519.PublicKey }

func (v plainVerifier) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(v.pub, data, sig) {
		return errors.New("bad signature")
	}
	return nil
}
func (v plainVerifier) KeyID() (string, error)   { return "", nil }
func (v plainVerifier) Public() crypto.PublicKey { return v.pub }

// signed returns a key pair, the vuln attestation and the summary of a
// passing decision.
func signed(t testing.TB, passed bool) (ed25519.PublicKey, json.RawMessage, json.RawMessage) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	vuln, err := s.Vuln(ctx, subject, attest.Vuln{
		Scanner: attest.Scanner{URI: "pkg:golang/github.com/aquasecurity/trivy@v0.74.0", Version: "0.74.0",
			DB: attest.DB{URI: "ghcr.io/aquasecurity/trivy-db", Version: "2026-09-01T00:00:00Z"},
			Result: attest.Result{Counts: map[string]int{"medium": 1},
				Findings: []attest.Finding{{ID: "CVE-2025-46394", Package: "busybox", InstalledVersion: "1.37.0-r18", FixedVersion: "1.37.0-r19", Severity: "MEDIUM"}}}},
		Metadata: attest.Metadata{ScanStartedOn: at, ScanFinishedOn: at},
	})
	if err != nil {
		t.Fatalf("Vuln: %v", err)
	}
	vsa, err := s.Summary(ctx, attest.Summary{Subject: subject, Verifier: "rampart/scanner", ResourceURI: purl, Passed: passed,
		Time: at, PolicyURI: "file:///etc/rampart/gate.yaml", PolicyDigest: policyV1, Input: vuln})
	if err != nil {
		t.Fatalf("Summary: %v", err)
	}
	return pub, vuln, vsa
}

// TestVerifiesWithTheLibrariesAlone checks both attestations with the DSSE
// library's EnvelopeVerifier and the in-toto Statement type, nothing else.
func TestVerifiesWithTheLibrariesAlone(t *testing.T) {
	pub, vuln, vsa := signed(t, true)
	ev, err := dsse.NewEnvelopeVerifier(plainVerifier{pub})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, predicateType string
		raw                 json.RawMessage
		inPredicate         string
	}{
		{"vuln", "https://cosign.sigstore.dev/attestation/vuln/v1", vuln, `"CVE-2025-46394"`},
		{"vsa", "https://slsa.dev/verification_summary/v1", vsa, `"PASSED"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env dsse.Envelope
			if err := json.Unmarshal(tc.raw, &env); err != nil {
				t.Fatal(err)
			}
			if env.PayloadType != "application/vnd.in-toto+json" {
				t.Errorf("payloadType = %q", env.PayloadType)
			}
			if _, err := ev.Verify(context.Background(), &env); err != nil {
				t.Fatalf("DSSE verify: %v", err)
			}
			body, err := env.DecodeB64Payload()
			if err != nil {
				t.Fatal(err)
			}
			var st ita.Statement
			if err := protojson.Unmarshal(body, &st); err != nil {
				t.Fatalf("statement: %v", err)
			}
			if err := st.Validate(); err != nil {
				t.Fatalf("statement: %v", err)
			}
			if st.GetType() != ita.StatementTypeUri || st.GetPredicateType() != tc.predicateType {
				t.Errorf("statement %q / %q", st.GetType(), st.GetPredicateType())
			}
			if got := st.GetSubject()[0].GetDigest()["sha256"]; "sha256:"+got != digest {
				t.Errorf("subject digest %s, want %s", got, digest)
			}
			pred, _ := protojson.Marshal(st.GetPredicate())
			if !bytes.Contains(pred, []byte(tc.inPredicate)) {
				t.Errorf("predicate %s lacks %s", pred, tc.inPredicate)
			}

			// One byte of the signed payload changed: the library refuses it.
			body[len(body)/2] ^= 0x01
			forged := env
			forged.Payload = base64.StdEncoding.EncodeToString(body)
			if _, err := ev.Verify(context.Background(), &forged); err == nil {
				t.Fatal("a payload with one byte changed verified")
			}
		})
	}
}

func TestVerifySummary(t *testing.T) {
	pub, vuln, vsa := signed(t, true)
	_, _, failed := signed(t, false) // signed by another key
	otherPub, _, _ := signed(t, true)
	good := attest.Expect{Digest: digest, ResourceURI: purl, Policies: []string{policyV1}}
	v, err := attest.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.VerifySummary(context.Background(), vsa, good); err != nil {
		t.Fatalf("VerifySummary: %v", err)
	} else if p.GetPolicy().GetUri() != "file:///etc/rampart/gate.yaml" || len(p.GetInputAttestations()) != 1 ||
		p.GetInputAttestations()[0].GetDigest()["sha256"] != attest.Digest(vuln) {
		t.Errorf("summary = %v", p)
	}

	flipped := bytes.Clone(vsa)
	i := bytes.Index(flipped, []byte(`"sig":"`)) + len(`"sig":"`)
	flipped[i] ^= 'A' ^ 'B'
	if flipped[i] == vsa[i] {
		flipped[i] ^= 1
	}

	tests := []struct {
		name     string
		verifier ed25519.PublicKey
		raw      []byte
		want     attest.Expect
		err      error
	}{
		{"another artifact", pub, vsa, attest.Expect{Digest: "sha256:" + strings.Repeat("0", 64), ResourceURI: purl, Policies: good.Policies}, attest.ErrSubject},
		{"another purl", pub, vsa, attest.Expect{Digest: digest, ResourceURI: purl + "x", Policies: good.Policies}, attest.ErrSubject},
		{"unknown policy", pub, vsa, attest.Expect{Digest: digest, ResourceURI: purl, Policies: []string{strings.Repeat("a", 64)}}, attest.ErrPolicy},
		{"another key", otherPub, vsa, good, attest.ErrSignature},
		{"another key's decision", pub, failed, good, attest.ErrSignature},
		{"signature byte changed", pub, flipped, good, attest.ErrSignature},
		{"vuln attestation in place of a summary", pub, vuln, good, attest.ErrStatement},
		{"not an envelope", pub, []byte(`{"payload":1}`), good, attest.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := attest.NewVerifier(tt.verifier)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.VerifySummary(context.Background(), tt.raw, tt.want); !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestFailedSummary(t *testing.T) {
	pub, _, vsa := signed(t, false)
	v, _ := attest.NewVerifier(pub)
	_, err := v.VerifySummary(context.Background(), vsa, attest.Expect{Digest: digest, ResourceURI: purl, Policies: []string{policyV1}})
	if !errors.Is(err, attest.ErrNotPassed) {
		t.Errorf("err = %v, want ErrNotPassed", err)
	}
}

func TestVulnRoundTrip(t *testing.T) {
	_, vuln, _ := signed(t, true)
	st, err := attest.Open(vuln, attest.PredicateVuln)
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.VulnOf(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Scanner.Result.Findings) != 1 || v.Scanner.Result.Findings[0].FixedVersion != "1.37.0-r19" || v.Scanner.Version != "0.74.0" {
		t.Errorf("vuln = %+v", v)
	}
	// The raw predicate uses cosign's field names.
	pred, _ := protojson.Marshal(st.GetPredicate())
	for _, field := range []string{`"builder.id"`, `"event_id"`, `"scanStartedOn"`, `"scanFinishedOn"`, `"db"`, `"result"`} {
		if !bytes.Contains(pred, []byte(field)) {
			t.Errorf("predicate lacks %s: %s", field, pred)
		}
	}
}

func TestVulnBounded(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	s, _ := attest.NewSigner(priv)
	fs := make([]attest.Finding, attest.MaxFindings+7)
	for i := range fs {
		fs[i] = attest.Finding{ID: "CVE-1", Package: "p", InstalledVersion: "1", Severity: "LOW"}
	}
	raw, err := s.Vuln(context.Background(), subject, attest.Vuln{Scanner: attest.Scanner{Result: attest.Result{Findings: fs}}})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := attest.Open(raw, attest.PredicateVuln)
	v, _ := attest.VulnOf(st)
	if len(v.Scanner.Result.Findings) != attest.MaxFindings || v.Scanner.Result.Omitted != 7 {
		t.Errorf("findings %d omitted %d", len(v.Scanner.Result.Findings), v.Scanner.Result.Omitted)
	}
	if len(raw) > 256<<10 {
		t.Errorf("an attestation of %d findings is %d bytes", len(fs), len(raw))
	}
}
