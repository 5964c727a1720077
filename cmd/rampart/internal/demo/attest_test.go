package demo

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	ita "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rampartci/rampart/pkg/events"
)

// ed25519Verifier is a dsse.Verifier over the scanner's public key, written
// against the DSSE library's interface alone.
type ed25519Verifier struct{ pub ed25519.PublicKey }

func (v ed25519Verifier) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(v.pub, data, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}
func (v ed25519Verifier) KeyID() (string, error)   { return "", nil }
func (v ed25519Verifier) Public() crypto.PublicKey { return v.pub }

// verifyWithLibraries checks a demo verdict's attestations as a
// supply-chain tool would, with the DSSE and in-toto libraries and the
// scanner's public key file only: both verify, both are about the image's
// digest, and the summary passed.
func verifyWithLibraries(t *testing.T, e *Env, verdict events.Scan) {
	t.Helper()
	b, err := os.ReadFile(e.Mesh.ScannerKeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := dsse.NewEnvelopeVerifier(ed25519Verifier{ed25519.PublicKey(pub)})
	if err != nil {
		t.Fatal(err)
	}
	oci, err := events.ParseOCI(verdict.Target)
	if err != nil {
		t.Fatal(err)
	}
	digest := strings.TrimPrefix(oci.Digest, "sha256:")
	types := map[string]string{}
	for _, raw := range verdict.Attestations {
		var env dsse.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatal(err)
		}
		if _, err := ev.Verify(t.Context(), &env); err != nil {
			t.Fatalf("DSSE: %v", err)
		}
		body, _ := env.DecodeB64Payload()
		var st ita.Statement
		if err := protojson.Unmarshal(body, &st); err != nil || st.Validate() != nil {
			t.Fatalf("in-toto statement: %v %v", err, st.Validate())
		}
		if got := st.GetSubject()[0].GetDigest()["sha256"]; got != digest {
			t.Errorf("%s is about sha256:%s, the verdict about sha256:%s", st.GetPredicateType(), got, digest)
		}
		pred, _ := protojson.Marshal(st.GetPredicate())
		types[st.GetPredicateType()] = string(pred)
	}
	if _, ok := types["https://cosign.sigstore.dev/attestation/vuln/v1"]; !ok {
		t.Errorf("no vuln attestation in %v", types)
	}
	if vsa := types["https://slsa.dev/verification_summary/v1"]; !strings.Contains(vsa, `"verificationResult":"PASSED"`) {
		t.Errorf("verification summary %s, want PASSED", vsa)
	}
}
