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

func TestLedgerWrittenBeforeStillVerifies(t *testing.T) {
	if *update {
		s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
		if err != nil {
			t.Fatal(err)
		}
		es, cps := goodLog(t, s, 20, 5, 12, 20)
		f := fixture{Key: s.VerifierKey(), Entries: es}
		for _, cp := range cps {
			f.Checkpoints = append(f.Checkpoints, string(cp))
		}
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(fixturePath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fixturePath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	cps := make([][]byte, len(f.Checkpoints))
	for i, cp := range f.Checkpoints {
		cps[i] = []byte(cp)
	}
	feed := func(es []Entry) func(*Checker) error {
		return func(c *Checker) error {
			for _, e := range es {
				c.Entry(e)
			}
			for _, cp := range cps {
				c.Checkpoint(cp)
			}
			return nil
		}
	}
	for _, pinned := range []int64{0, 20} {
		t.Run(fmt.Sprintf("pinned %d", pinned), func(t *testing.T) {
			res, err := Stream(v, pinned, feed(f.Entries))
			if err != nil || res.Entries != 20 || res.Checkpoints != 3 || res.SignaturesChecked != 20-pinned {
				t.Fatalf("Stream = %+v, %v", res, err)
			}
			// A changed byte is still named by index.
			es := slices.Clone(f.Entries)
			d := slices.Clone(es[13].Data)
			d[len(d)-3] ^= 1
			es[13].Data = d
			_, err = Stream(v, pinned, feed(es))
			var ve *Error
			if !errors.As(err, &ve) || ve.Index != 13 || !errors.Is(err, ErrEntrySignature) {
				t.Fatalf("tampered fixture: %v, want a bad signature at entry 13", err)
			}
		})
	}
}
