package attest_test

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/rampartci/rampart/pkg/attest"
)

// BenchmarkVerifySummary is what the deployer adds per passing verdict;
// BenchmarkEd25519Baseline, one bare Ed25519 verification of the same
// envelope's bytes, is the baseline to compare it with (ratio).
func BenchmarkVerifySummary(b *testing.B) {
	pub, _, vsa := signed(b, true)
	v, _ := attest.NewVerifier(pub)
	want := attest.Expect{Digest: digest, ResourceURI: purl, Policies: []string{policyV1}}
	for b.Loop() {
		if _, err := v.VerifySummary(context.Background(), vsa, want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEd25519Baseline(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, _, vsa := signed(b, true)
	sig := ed25519.Sign(priv, vsa)
	for b.Loop() {
		if !ed25519.Verify(pub, vsa, sig) {
			b.Fatal("bad")
		}
	}
}
