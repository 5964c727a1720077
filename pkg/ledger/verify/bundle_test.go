package verify

import (
	"errors"
	"fmt"
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
	var f mixedFixture
	loadFixture(t, mixedFixturePath, &f, func(s *checkpoint.Signer) any {
		msgs, cps := mixedLog(t, s)
		return mixedFixture{Key: s.VerifierKey(), Messages: msgs, Checkpoints: notes(cps)}
	})
	v, cps := opened(t, f.Key, f.Checkpoints)
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
	// forge31 replaces entry 31 in bundle m (entries 30..39) with a forged
	// one, its leaf hash included.
	forge31 := func(t *testing.T, m message) message {
		es := split(t, m)
		forged, err := entry.Marshal(makeEntry(t, 31, "forged"))
		if err != nil {
			t.Fatal(err)
		}
		es[1] = forged
		return bundleMsg(s, 30, es)
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
				leaves := msgs[21].Header[bundle.LeavesHeader]
				msgs[21] = forge31(t, msgs[21])
				msgs[21].Header[bundle.LeavesHeader] = leaves
				return msgs
			},
			wantErr: ErrEntryLeaf, wantIndex: 31,
		},
		{
			name: "a forged entry in a bundle with a matching leaf hash: the first checkpoint over it names its range",
			mutate: func(t *testing.T, msgs []message) []message {
				msgs[21] = forge31(t, msgs[21])
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
