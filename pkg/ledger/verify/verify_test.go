package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
)

var t0 = time.Date(2025, 11, 26, 17, 0, 0, 0, time.UTC)

func makeEntry(t testing.TB, i int, id string) *entry.Entry {
	t.Helper()
	return &entry.Entry{
		Index:      uint64(i),
		RecordedAt: t0.Add(time.Duration(i) * time.Millisecond),
		Subject:    "rampart.scan.shop",
		StreamSeq:  uint64(10 + 2*i),
		Kind:       entry.KindEvent,
		EventID:    id,
		Source:     "/scanner",
		Type:       "dev.cdevents.testsuiterun.finished.0.3.0",
		ChainID:    "chain-" + fmt.Sprint(i%3),
		Event:      json.RawMessage(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/scanner","type":"dev.cdevents.testsuiterun.finished.0.3.0"}`, id)),
	}
}

func signed(t testing.TB, s *checkpoint.Signer, e *entry.Entry) Entry {
	t.Helper()
	b, err := entry.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Data: b, Signature: s.SignEntry(b)}
}

// goodLog returns n signed entries and checkpoints at the given sizes.
func goodLog(t testing.TB, s *checkpoint.Signer, n int, cpSizes ...int) ([]Entry, [][]byte) {
	t.Helper()
	entries := make([]Entry, n)
	tr := tree.New()
	for i := range entries {
		entries[i] = signed(t, s, makeEntry(t, i, fmt.Sprintf("e-%d", i)))
		if _, err := tr.Append(entries[i].Data); err != nil {
			t.Fatal(err)
		}
	}
	var cps [][]byte
	for _, size := range cpSizes {
		cps = append(cps, signCheckpoint(t, s, tr, int64(size)))
	}
	return entries, cps
}

func signCheckpoint(t testing.TB, s *checkpoint.Signer, tr *tree.Tree, size int64) []byte {
	t.Helper()
	root, err := tr.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := s.Sign(checkpoint.Checkpoint{Origin: s.Name(), Size: size, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestLog(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	forger, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20

	tests := []logTest{
		{
			name:   "good log",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) { return es, cps },
		},
		{
			name: "one byte of one entry changed",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				d := slices.Clone(es[7].Data)
				d[strings.Index(string(d), "e-7")+2] = '8'
				es[7].Data = d
				return es, cps
			},
			wantErr: ErrEntrySignature, wantIndex: 7, wantCheckpoint: -1,
		},
		{
			name: "entry changed and re-signed with another key",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				e := makeEntry(t, 9, "other")
				es[9] = signed(t, forger, e)
				return es, cps
			},
			wantErr: ErrEntrySignature, wantIndex: 9, wantCheckpoint: -1,
		},
		{
			name: "forged extra entry inserted",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				forged := signed(t, forger, makeEntry(t, 3, "forged"))
				return slices.Insert(es, 3, forged), cps
			},
			wantErr: ErrEntrySignature, wantIndex: 3, wantCheckpoint: -1,
		},
		{
			name: "forged extra entry appended after the last checkpoint",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				e := makeEntry(t, n, "forged")
				e.StreamSeq = 1000
				return append(es, signed(t, forger, e)), cps
			},
			wantErr: ErrEntrySignature, wantIndex: n, wantCheckpoint: -1,
		},
		{
			name: "forged entry without signature",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				es[n-1].Signature = ""
				return es, cps
			},
			wantErr: ErrEntrySignature, wantIndex: n - 1, wantCheckpoint: -1,
			// Its bytes are the ones the checkpoint at 20 signed: with
			// the checkpoint pinning them, the missing header is moot.
			passesPinned: true,
		},
		{
			name: "validly signed entry with the wrong index",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				e := makeEntry(t, 4, "e-4")
				e.Index = 5
				es[4] = signed(t, s, e)
				return es, cps
			},
			wantErr: ErrEntryIndex, wantIndex: 4, wantCheckpoint: -1,
		},
		{
			name: "the first entries are missing (stream limited to its last messages)",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				return es[4:], cps
			},
			wantErr: ErrEntriesMissing, wantIndex: 0, wantCheckpoint: -1,
		},
		{
			name: "entries missing in the middle",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				return slices.Delete(es, 6, 8), cps
			},
			wantErr: ErrEntriesMissing, wantIndex: 6, wantCheckpoint: -1,
		},
		{
			name: "validly signed non-canonical entry",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				d := []byte(strings.Replace(string(es[2].Data), `"index":2`, `"index": 2`, 1))
				es[2] = Entry{Data: d, Signature: s.SignEntry(d)}
				return es, cps
			},
			wantErr: ErrEntryMalformed, wantIndex: 2, wantCheckpoint: -1,
		},
		{
			name: "stream sequence goes backwards",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				e := makeEntry(t, 6, "e-6")
				e.StreamSeq = 3
				es[6] = signed(t, s, e)
				return es, cps
			},
			wantErr: ErrEntryOrder, wantIndex: 6, wantCheckpoint: -1,
		},
		{
			name: "same event recorded twice",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				es[11] = signed(t, s, makeEntry(t, 11, "e-2"))
				return es, cps
			},
			wantErr: ErrDuplicateEvent, wantIndex: 11, wantCheckpoint: -1,
		},
		{
			name: "checkpoint text tampered",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				cps[1] = []byte(strings.Replace(string(cps[1]), "\n12\n", "\n11\n", 1))
				return es, cps
			},
			wantErr: ErrCheckpointSignature, wantIndex: -1, wantCheckpoint: 1,
		},
		{
			name: "checkpoint signed by another key",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				tr := tree.New()
				for _, e := range es {
					tr.Append(e.Data)
				}
				cps[2] = signCheckpoint(t, forger, tr, 20)
				return es, cps
			},
			wantErr: ErrCheckpointSignature, wantIndex: -1, wantCheckpoint: 2,
		},
		{
			name: "history rewritten with the ledger key: checkpoint root mismatch",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				// Every entry still verifies, but entry 8 is not what the
				// checkpoint at size 12 signed; the checkpoint at 5 matches,
				// so the first entry not vouched for is 5.
				es[8] = signed(t, s, makeEntry(t, 8, "rewritten"))
				return es, cps
			},
			wantErr: ErrCheckpointRoot, wantIndex: 5, wantCheckpoint: 1,
		},
		{
			name: "entries truncated",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				return es[:17], cps
			},
			wantErr: ErrCheckpointBeyondLog, wantIndex: 17, wantCheckpoint: 2,
		},
		{
			name: "checkpoints out of order",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				cps[0], cps[1] = cps[1], cps[0]
				return es, cps
			},
			wantErr: ErrCheckpointOrder, wantIndex: -1, wantCheckpoint: 1,
		},
		{
			name: "entry error before the checkpoint error wins",
			mutate: func(es []Entry, cps [][]byte) ([]Entry, [][]byte) {
				es[1].Signature = s.SignEntry([]byte("x"))
				cps[2] = []byte("garbage")
				return es, cps
			},
			wantErr: ErrEntrySignature, wantIndex: 1, wantCheckpoint: -1,
		},
	}
	// Batches of 3 put every bad entry and checkpoint boundary in a later
	// batch than the first; 4096 is the default, one batch for all.
	for _, batch := range []int{3, 4096} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			defer func(old int) { batchSize = old }(batchSize)
			batchSize = batch
			testLog(t, s, tests)
		})
	}
}

type logTest struct {
	name string
	// mutate changes copies of a good log of n entries with
	// checkpoints at sizes 5, 12 and 20.
	mutate         func(es []Entry, cps [][]byte) ([]Entry, [][]byte)
	wantErr        error
	wantIndex      int64
	wantCheckpoint int
	// passesPinned: the log verifies when its entries are pinned by the
	// last checkpoint (Stream with pinned 20), as only an entry's own
	// signature is wrong.
	passesPinned bool
}

// An entry claiming an index beyond any log (2^64-1, which converted to
// int64 would be -1) is named as a wrong index, not taken for entries
// missing before it.
func TestIndexBeyondAnyLog(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	es, cps := goodLog(t, s, 20, 5, 12, 20)
	e := makeEntry(t, 4, "e-4")
	e.Index = math.MaxUint64
	es[4] = signed(t, s, e)
	_, err = Log(es, cps, s.Verifier())
	var ve *Error
	if !errors.As(err, &ve) || !errors.Is(err, ErrEntryIndex) || errors.Is(err, ErrEntriesMissing) || ve.Index != 4 ||
		!strings.Contains(ve.Reason, "says index 18446744073709551615, beyond any log") {
		t.Fatalf("Log = %v", err)
	}
}

func testLog(t *testing.T, s *checkpoint.Signer, tests []logTest) {
	const n = 20
	for _, pinned := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if pinned {
				name = "pinned/" + name
				if tt.passesPinned {
					tt.wantErr = nil
				}
			}
			testLogCase(t, s, name, tt, pinned)
		}
	}
}

func testLogCase(t *testing.T, s *checkpoint.Signer, name string, tt logTest, pinned bool) {
	const n = 20
	{
		t.Run(name, func(t *testing.T) {
			es, cps := goodLog(t, s, n, 5, 12, 20)
			es, cps = tt.mutate(es, cps)
			res, err := Log(es, cps, s.Verifier())
			if pinned {
				reads := 0
				res, err = Stream(s.Verifier(), n, func(c *Checker) error {
					reads++
					for _, e := range es {
						c.Entry(e)
					}
					for _, cp := range cps {
						c.Checkpoint(cp)
					}
					return nil
				})
				if want := 1 + min(1, btoi(tt.wantErr != nil)); reads != want {
					t.Errorf("Stream read the log %d times, want %d", reads, want)
				}
				if tt.wantErr == nil && res.SignaturesChecked != 0 {
					t.Fatalf("Stream checked %d signatures of entries the checkpoint pins", res.SignaturesChecked)
				}
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Log: %v", err)
				}
				if res.Entries != n || res.Checkpoints != 3 || res.Latest == nil || res.Latest.Size != n || res.Unanchored != 0 {
					t.Fatalf("Result = %+v", res)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Log error = %v, want %v", err, tt.wantErr)
			}
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("Log error %T is not *Error", err)
			}
			if ve.Index != tt.wantIndex || ve.Checkpoint != tt.wantCheckpoint {
				t.Fatalf("Error names entry %d checkpoint %d, want entry %d checkpoint %d: %v",
					ve.Index, ve.Checkpoint, tt.wantIndex, tt.wantCheckpoint, ve)
			}
		})
	}
}

func TestLogEmptyAndUnanchored(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Log(nil, nil, s.Verifier())
	if err != nil || res.Entries != 0 || res.Latest != nil {
		t.Fatalf("empty log: %+v, %v", res, err)
	}
	es, cps := goodLog(t, s, 9, 0, 4)
	res, err = Log(es, cps, s.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	if res.Unanchored != 5 || res.Latest.Size != 4 {
		t.Fatalf("Result = %+v, want 5 unanchored after a checkpoint at 4", res)
	}
	if want, _ := tree.New().RootAt(0); res.Root == want {
		t.Fatal("root of 9 entries is the empty root")
	}
}

func BenchmarkVerify100k(b *testing.B) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	es, cps := goodLog(b, s, n, 25_000, 50_000, 75_000, n)
	v := s.Verifier()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Log(es, cps, v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkInclusionProof(b *testing.B) {
	const n = 100_000
	tr := tree.New()
	for i := range n {
		tr.Append(fmt.Appendf(nil, "leaf %d", i))
	}
	root, err := tr.RootAt(n)
	if err != nil {
		b.Fatal(err)
	}
	i := int64(0)
	for b.Loop() {
		i = (i + 7919) % n
		p, err := tr.InclusionProof(i, n)
		if err != nil {
			b.Fatal(err)
		}
		if err := tlog.CheckRecord(p, n, root, i, tlog.RecordHash(fmt.Appendf(nil, "leaf %d", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMissingEntriesMessage: a log that lost its first entries says so in
// plain words rather than blaming entry 0's index.
func TestMissingEntriesMessage(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	es, cps := goodLog(t, s, 30, 10, 30)
	_, err = Log(es[25:], cps, s.Verifier())
	if want := "ledger entry 0: the first 25 entries are missing: the log starts at entry 25"; err == nil || err.Error() != want {
		t.Fatalf("Log = %v, want %q", err, want)
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 5051: "5,051", 1234567: "1,234,567", -4952: "-4,952"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestExtends: a trusted head is extended by the same head and by a larger
// consistent one; a smaller tree, a different root at the same size and a
// larger tree with other first entries are named with both heads.
func TestExtends(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	head := func(es []Entry, size int64) (checkpoint.Checkpoint, *tree.Tree) {
		tr := tree.New()
		for _, e := range es {
			tr.Append(e.Data)
		}
		root, err := tr.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		return checkpoint.Checkpoint{Origin: s.Name(), Size: size, Root: root}, tr
	}
	es, _ := goodLog(t, s, 20)
	trusted, tr := head(es, 12)
	cur, _ := head(es, 20)
	proof, err := tr.ConsistencyProof(12, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := Extends(trusted, cur, proof, "file x"); err != nil {
		t.Fatalf("consistent head: %v", err)
	}
	if err := Extends(trusted, trusted, nil, "file x"); err != nil {
		t.Fatalf("same head: %v", err)
	}
	if err := Extends(checkpoint.Checkpoint{Origin: s.Name()}, cur, nil, "file x"); err != nil {
		t.Fatalf("from the empty tree: %v", err)
	}

	smaller, _ := head(es, 9)
	err = Extends(trusted, smaller, nil, "file x")
	if !errors.Is(err, ErrTreeShrank) || !strings.HasPrefix(err.Error(), "tree shrank from 12 to 9: ") ||
		!strings.Contains(err.Error(), Head(smaller)) || !strings.Contains(err.Error(), Head(trusted)+", file x") {
		t.Fatalf("smaller tree: %v", err)
	}

	other := slices.Clone(es)
	other[3] = signed(t, s, makeEntry(t, 3, "rewritten"))
	forkSame, _ := head(other, 12)
	if err := Extends(trusted, forkSame, nil, "file x"); !errors.Is(err, ErrTreeFork) || !strings.Contains(err.Error(), "the roots differ") {
		t.Fatalf("same size, other root: %v", err)
	}
	forkCur, forkTree := head(other, 20)
	forkProof, err := forkTree.ConsistencyProof(12, 20)
	if err != nil {
		t.Fatal(err)
	}
	err = Extends(trusted, forkCur, forkProof, "file x")
	if !errors.Is(err, ErrTreeFork) || !strings.HasPrefix(err.Error(), "tree forked at size 12: ") || !strings.Contains(err.Error(), "consistency proof fails") {
		t.Fatalf("larger forked tree: %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPinWithoutTheCheckpoint: entries pinned to a checkpoint that is not
// among the ones checked are not vouched for by anything.
func TestPinWithoutTheCheckpoint(t *testing.T) {
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	es, cps := goodLog(t, s, 20, 5, 12)
	c := NewChecker(s.Verifier())
	c.Pin(20)
	for _, e := range es {
		c.Entry(e)
	}
	for _, cp := range cps {
		c.Checkpoint(cp)
	}
	res, err := c.Result()
	var ve *Error
	if !errors.As(err, &ve) || !errors.Is(err, ErrNotPinned) || ve.Index != 12 {
		t.Fatalf("Result = %+v, %v; want ErrNotPinned at entry 12", res, err)
	}
	if res.SignaturesChecked != 0 {
		t.Fatalf("SignaturesChecked = %d", res.SignaturesChecked)
	}
	// Without Pin every signature is checked.
	res, err = Log(es, cps, s.Verifier())
	if err != nil || res.SignaturesChecked != 20 {
		t.Fatalf("Log = %+v, %v", res, err)
	}
}
