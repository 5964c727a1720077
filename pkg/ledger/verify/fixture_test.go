package verify

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
)

var update = flag.Bool("update", false, "rewrite the ledger fixture in testdata")

// fixture is a small ledger as the ledger service wrote it before entries
// were pinned by checkpoints: one signed entry per LEDGER message, signed
// checkpoints. Keeping it checks that a ledger written in that format keeps
// verifying, with and without pinning.
type fixture struct {
	Key         string   `json:"key"`
	Entries     []Entry  `json:"entries"`
	Checkpoints []string `json:"checkpoints"`
}

const fixturePath = "testdata/ledger-signed-entries.json"

// loadFixture reads the JSON fixture at path into f; with -update it first
// writes it anew, as build makes it with a new key.
func loadFixture(t *testing.T, path string, f any, build func(*checkpoint.Signer) any) {
	t.Helper()
	if *update {
		s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.MarshalIndent(build(s), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		t.Fatal(err)
	}
}

// notes and opened convert a fixture's checkpoints and key.
func notes(cps [][]byte) []string {
	out := make([]string, len(cps))
	for i, cp := range cps {
		out[i] = string(cp)
	}
	return out
}

func opened(t *testing.T, key string, cps []string) (*checkpoint.Verifier, [][]byte) {
	t.Helper()
	v, err := checkpoint.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(cps))
	for i, cp := range cps {
		out[i] = []byte(cp)
	}
	return v, out
}

func TestLedgerWrittenBeforeStillVerifies(t *testing.T) {
	var f fixture
	loadFixture(t, fixturePath, &f, func(s *checkpoint.Signer) any {
		es, cps := goodLog(t, s, 20, 5, 12, 20)
		return fixture{Key: s.VerifierKey(), Entries: es, Checkpoints: notes(cps)}
	})
	v, cps := opened(t, f.Key, f.Checkpoints)
	for _, pinned := range []int64{0, 20} {
		t.Run(fmt.Sprintf("pinned %d", pinned), func(t *testing.T) {
			res, err := Stream(v, pinned, feed(f.Entries, cps))
			if err != nil || res.Entries != 20 || res.Checkpoints != 3 || res.SignaturesChecked != 20-pinned {
				t.Fatalf("Stream = %+v, %v", res, err)
			}
			// A changed byte is still named by index.
			es := slices.Clone(f.Entries)
			d := slices.Clone(es[13].Data)
			d[len(d)-3] ^= 1
			es[13].Data = d
			_, err = Stream(v, pinned, feed(es, cps))
			var ve *Error
			if !errors.As(err, &ve) || ve.Index != 13 || !errors.Is(err, ErrEntrySignature) {
				t.Fatalf("tampered fixture: %v, want a bad signature at entry 13", err)
			}
		})
	}
}
