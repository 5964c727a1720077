package events

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestScanSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	scan := Scan{Target: "pkg:oci/shop@sha256:aa", TargetKind: "image", Environment: "prod", Outcome: OutcomePass,
		Counts: map[string]int{"LOW": 1}, DBVersion: "db-1", PolicyVersion: "p-1"}
	signed, err := SignScan(meta("e-signed"), scan, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(signed); err != nil {
		t.Fatal(err)
	}
	// The signature survives the wire.
	msg, err := ToMsg(SubjectOf(signed), signed)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := FromMsg(msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyScan(wire, pub)
	if err != nil || got.Outcome != OutcomePass || got.DBVersion != "db-1" {
		t.Fatalf("VerifyScan = %+v, %v", got, err)
	}

	unsigned, _ := NewScanFinished(meta("e-unsigned"), scan)
	forgedOutcome := signed.Clone()
	_ = forgedOutcome.SetData("application/json", bytes.Replace(signed.Data(), []byte(`"outcome":"pass"`), []byte(`"outcome":"blocked"`), 1))
	forgedTarget := signed.Clone()
	_ = forgedTarget.SetData("application/json", bytes.ReplaceAll(signed.Data(), []byte("sha256:aa"), []byte("sha256:ff")))
	for _, tt := range []struct {
		name string
		ev   func() error
		want error
	}{
		{"unsigned", func() error { _, err := VerifyScan(unsigned, pub); return err }, ErrUnsigned},
		{"other key", func() error { _, err := VerifyScan(signed, otherPub); return err }, ErrBadSignature},
		{"changed outcome", func() error { _, err := VerifyScan(forgedOutcome, pub); return err }, ErrBadSignature},
		{"changed target", func() error { _, err := VerifyScan(forgedTarget, pub); return err }, ErrBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.ev(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerdictKeyFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scanner", "verdict.key")
	priv, err := LoadOrCreateVerdictKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateVerdictKey(path)
	if err != nil || !again.Equal(priv) {
		t.Fatalf("reload gave another key: %v", err)
	}
	pub, err := LoadVerdictPublicKey(path + ".pub")
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("public key: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	_ = os.WriteFile(path+".bad", []byte("nope"), 0o600)
	if _, err := LoadVerdictPublicKey(path + ".bad"); err == nil {
		t.Fatal("garbage accepted as a public key")
	}
}
