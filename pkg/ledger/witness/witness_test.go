package witness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
)

func signedAt(t *testing.T, s *checkpoint.Signer, size int64) []byte {
	t.Helper()
	b, err := s.Sign(checkpoint.Checkpoint{Origin: s.Name(), Size: size, Root: [32]byte{byte(size)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFiles: both layouts return nil before the first checkpoint and the
// last one after; the log keeps every note, oldest first.
func TestFiles(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "sub", "checkpoints.log")
	for _, w := range []Witness{NewLog(logPath), NewLatest(filepath.Join(dir, "sub", "latest"))} {
		t.Run(w.Name(), func(t *testing.T) {
			if got, err := w.Latest(); got != nil || err != nil {
				t.Fatalf("Latest before any = %q, %v", got, err)
			}
			for _, size := range []int64{1, 5, 12} {
				if err := w.Add(signedAt(t, s, size)); err != nil {
					t.Fatal(err)
				}
				c, err := Trusted(w, s.Verifier())
				if err != nil || c == nil || c.Size != size {
					t.Fatalf("Trusted after size %d = %+v, %v", size, c, err)
				}
			}
			if err := w.Add([]byte("no signature\n")); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Add of a bare text = %v, want ErrMalformed", err)
			}
		})
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "rampart.ledger\n1\n") || strings.Count(string(b), "rampart.ledger\n") != 3 || !strings.HasSuffix(string(b), "\n\n") {
		t.Fatalf("log file:\n%s", b)
	}

	// Another key's checkpoint is not trusted; a torn append is reported.
	other, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Trusted(NewLog(logPath), other.Verifier()); err == nil || !strings.Contains(err.Error(), "does not verify with key "+other.VerifierKey()) {
		t.Fatalf("Trusted with another key = %v", err)
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("rampart.ledger\n13\n")
	f.Close()
	if _, err := NewLog(logPath).Latest(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "interrupted write") {
		t.Fatalf("Latest of a torn log = %v", err)
	}
}
