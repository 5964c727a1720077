package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func TestSignOpen(t *testing.T) {
	s, _, err := GenerateSigner(DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := GenerateSigner(DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	c := Checkpoint{Origin: DefaultOrigin, Size: 12, Root: tlog.RecordHash([]byte("x"))}
	signed, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := Text(signed); got != c.Text() {
		t.Fatalf("Text = %q, want %q", got, c.Text())
	}
	tamperedSize := strings.Replace(string(signed), "\n12\n", "\n13\n", 1)
	tests := []struct {
		name    string
		v       *Verifier
		signed  string
		want    Checkpoint
		wantErr error
	}{
		{"good", s.Verifier(), string(signed), c, nil},
		{"other key", other.Verifier(), string(signed), Checkpoint{}, ErrSignature},
		{"tampered size", s.Verifier(), tamperedSize, Checkpoint{}, ErrSignature},
		{"no signature", s.Verifier(), c.Text(), Checkpoint{}, ErrMalformed},
		{"garbage", s.Verifier(), "hello", Checkpoint{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Open([]byte(tt.signed))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("Open = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSignRejectsOtherOrigin(t *testing.T) {
	s, _, err := GenerateSigner(DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(Checkpoint{Origin: "other"}); !errors.Is(err, ErrSignature) {
		t.Fatalf("Sign error = %v, want ErrSignature", err)
	}
}

func TestParse(t *testing.T) {
	root := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	tests := []struct {
		name    string
		text    string
		want    int64
		wantErr bool
	}{
		{"good", "o\n5\n" + root + "\n", 5, false},
		{"zero", "o\n0\n" + root + "\n", 0, false},
		{"extension line", "o\n5\n" + root + "\next\n", 5, false},
		{"no final newline", "o\n5\n" + root, 0, true},
		{"missing root", "o\n5\n", 0, true},
		{"negative size", "o\n-1\n" + root + "\n", 0, true},
		{"leading zero", "o\n05\n" + root + "\n", 0, true},
		{"plus sign", "o\n+5\n" + root + "\n", 0, true},
		{"short root", "o\n5\nAAAA\n", 0, true},
		{"empty origin", "\n5\n" + root + "\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if c.Size != tt.want {
				t.Fatalf("Size = %d, want %d", c.Size, tt.want)
			}
		})
	}
}

func TestLoadOrCreateSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "ledger.key")
	s1, created, err := LoadOrCreateSigner(path, "test.origin")
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateSigner = created %v, err %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(pub)) != s1.VerifierKey() {
		t.Fatalf(".pub = %q, want %q", pub, s1.VerifierKey())
	}
	// A .pub that already holds the key is left as it is (a read-only
	// mount keeps working); a stale one is replaced.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path+".pub", old, old); err != nil {
		t.Fatal(err)
	}
	s2, created, err := LoadOrCreateSigner(path, "test.origin")
	if fi, err := os.Stat(path + ".pub"); err != nil || !fi.ModTime().Equal(old) {
		t.Fatalf("loading rewrote a .pub that held the key (%v)", err)
	}
	if err != nil || created {
		t.Fatalf("second LoadOrCreateSigner = created %v, err %v", created, err)
	}
	if err := os.WriteFile(path+".pub", []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSigner(path, "test.origin"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + ".pub"); string(b) != string(pub) {
		t.Fatalf("a stale .pub was kept: %q", b)
	}
	if s2.VerifierKey() != s1.VerifierKey() {
		t.Fatal("reloaded key differs")
	}
	// The entry signature from the loaded key verifies with the .pub key.
	v, err := NewVerifier(string(pub))
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(`{"index":0}`)
	if err := v.CheckEntry(b, s2.SignEntry(b)); err != nil {
		t.Fatalf("CheckEntry: %v", err)
	}
	if _, _, err := LoadOrCreateSigner(path, "other.origin"); err == nil {
		t.Fatal("loading a key under another origin succeeded")
	}
}
