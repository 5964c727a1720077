package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
)

// message is a LEDGER message as stored: its headers and data.
type message struct {
	Header map[string]string `json:"header"`
	Data   []byte            `json:"data"`
}

func (m message) Get(k string) string { return m.Header[k] }

// entries decodes msgs as a reader of LEDGER does.
func entriesOf(t testing.TB, msgs []message) []Entry {
	t.Helper()
	var out []Entry
	for _, m := range msgs {
		bm, err := bundle.Read(m, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Entries(bm)...)
	}
	return out
}

// bundleMsg is the bundle message of entries es (canonical bytes) from
// index first, as the ledger writes it.
func bundleMsg(s *checkpoint.Signer, first int64, es [][]byte) message {
	var data []byte
	leaves := make([]tlog.Hash, len(es))
	for i, e := range es {
		data = bundle.Append(data, e)
		leaves[i] = tlog.RecordHash(e)
	}
	enc := bundle.EncodeLeaves(leaves)
	return message{Header: map[string]string{
		bundle.FirstHeader:  strconv.FormatInt(first, 10),
		bundle.LeavesHeader: enc,
		bundle.MACHeader:    s.BundleMAC(first, enc),
	}, Data: data}
}

// mixedLog is a ledger that was written one signed entry per message up to
// entry 19 and continued in bundles: 20..29, 30..39 (checkpoints at 12, 20,
// 35 and 40).
func mixedLog(t testing.TB, s *checkpoint.Signer) ([]message, [][]byte) {
	t.Helper()
	tr := tree.New()
	var msgs []message
	var pending [][]byte
	for i := range 40 {
		b, err := entry.Marshal(makeEntry(t, i, fmt.Sprintf("e-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Append(b); err != nil {
			t.Fatal(err)
		}
		if i < 20 {
			msgs = append(msgs, message{Header: map[string]string{entry.SignatureHeader: s.SignEntry(b)}, Data: b})
			continue
		}
		pending = append(pending, b)
		if len(pending) == 10 {
			msgs = append(msgs, bundleMsg(s, int64(i-9), pending))
			pending = nil
		}
	}
	var cps [][]byte
	for _, size := range []int64{12, 20, 35, 40} {
		cps = append(cps, signCheckpoint(t, s, tr, size))
	}
	return msgs, cps
}

// mixedFixture is mixedLog as stored in testdata: a ledger written before
// bundles that the ledger continued in bundles.
type mixedFixture struct {
	Key         string    `json:"key"`
	Messages    []message `json:"messages"`
	Checkpoints []string  `json:"checkpoints"`
}

const mixedFixturePath = "testdata/ledger-mixed.json"

// feed feeds es and cps to a Checker.
func feed(es []Entry, cps [][]byte) func(*Checker) error {
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

func TestMixedLedgerVerifies(t *testing.T) {
	if *update {
		s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
		if err != nil {
			t.Fatal(err)
		}
		msgs, cps := mixedLog(t, s)
		f := mixedFixture{Key: s.VerifierKey(), Messages: msgs}
		for _, cp := range cps {
			f.Checkpoints = append(f.Checkpoints, string(cp))
		}
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(mixedFixturePath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mixedFixturePath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(mixedFixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var f mixedFixture
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
	es := entriesOf(t, f.Messages)
	for _, pinned := range []int64{0, 35, 40} {
		t.Run(fmt.Sprintf("pinned %d", pinned), func(t *testing.T) {
			res, err := Stream(v, pinned, feed(es, cps))
			// Signed entries below the pinned size are not checked one by
			// one; bundled entries never are.
			if err != nil || res.Entries != 40 || res.Checkpoints != 4 || res.SignaturesChecked != max(0, 20-pinned) || res.Unsigned != 0 {
				t.Fatalf("Stream = %+v, %v", res, err)
			}
		})
	}
	// Without the last checkpoint, entries 35..39 are unanchored and,
	// being bundled, unsigned.
	res, err := Stream(v, 35, feed(es, cps[:3]))
	if err != nil || res.Unanchored != 5 || res.Unsigned != 5 {
		t.Fatalf("Stream without the last checkpoint = %+v, %v", res, err)
	}
}

// TestBundleTampering: tampering with bundled entries is named by entry
// index, pinned or not, as it is for signed entries (TestLog).
func TestBundleTampering(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	// mutate changes the messages of mixedLog: message 20 holds entries
	// 20..29, message 21 entries 30..39.
	split := func(t *testing.T, m message) [][]byte {
		es, err := bundle.Split(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	tests := []struct {
		name      string
		mutate    func(t *testing.T, msgs []message) []message
		wantErr   error
		wantIndex int64
	}{
		{
			name: "one byte of a bundled entry changed",
			mutate: func(t *testing.T, msgs []message) []message {
				d := slices.Clone(msgs[21].Data)
				i := strings.Index(string(d), "e-33")
				d[i+3] = '4'
				msgs[21].Data = d
				return msgs
			},
			wantErr: ErrEntryLeaf, wantIndex: 33,
		},
		{
			name: "two bundled entries swapped, with their leaf hashes",
			mutate: func(t *testing.T, msgs []message) []message {
				es := split(t, msgs[20])
				es[4], es[5] = es[5], es[4]
				msgs[20] = bundleMsg(s, 20, es)
				return msgs
			},
			wantErr: ErrEntryIndex, wantIndex: 24,
		},
		{
			name: "a bundled entry dropped, with its leaf hash",
			mutate: func(t *testing.T, msgs []message) []message {
				es := split(t, msgs[20])
				msgs[20] = bundleMsg(s, 20, slices.Delete(es, 7, 8))
				return msgs
			},
			wantErr: ErrEntriesMissing, wantIndex: 27,
		},
		{
			name: "a forged entry in a bundle, its leaf hash left as it was",
			mutate: func(t *testing.T, msgs []message) []message {
				es := split(t, msgs[21])
				forged, err := entry.Marshal(makeEntry(t, 31, "forged"))
				if err != nil {
					t.Fatal(err)
				}
				es[1] = forged
				h := msgs[21].Header
				msgs[21] = bundleMsg(s, 30, es)
				msgs[21].Header[bundle.LeavesHeader] = h[bundle.LeavesHeader]
				return msgs
			},
			wantErr: ErrEntryLeaf, wantIndex: 31,
		},
		{
			name: "a forged entry in a bundle with a matching leaf hash: the first checkpoint over it names its range",
			mutate: func(t *testing.T, msgs []message) []message {
				es := split(t, msgs[21])
				forged, err := entry.Marshal(makeEntry(t, 31, "forged"))
				if err != nil {
					t.Fatal(err)
				}
				es[1] = forged
				msgs[21] = bundleMsg(s, 30, es)
				return msgs
			},
			wantErr: ErrCheckpointRoot, wantIndex: 20,
		},
		{
			name: "a forged bundle inserted",
			mutate: func(t *testing.T, msgs []message) []message {
				forged, err := entry.Marshal(makeEntry(t, 30, "forged"))
				if err != nil {
					t.Fatal(err)
				}
				return slices.Insert(msgs, 21, bundleMsg(s, 30, [][]byte{forged}))
			},
			wantErr: ErrEntryIndex, wantIndex: 31,
		},
	}
	for _, tt := range tests {
		for _, pinned := range []int64{0, 40} {
			t.Run(fmt.Sprintf("%s/pinned %d", tt.name, pinned), func(t *testing.T) {
				msgs, cps := mixedLog(t, s)
				msgs = tt.mutate(t, msgs)
				_, err := Stream(s.Verifier(), pinned, feed(entriesOf(t, msgs), cps))
				var ve *Error
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &ve) || ve.Index != tt.wantIndex {
					t.Fatalf("Stream = %v, want %v at entry %d", err, tt.wantErr, tt.wantIndex)
				}
			})
		}
	}
}
