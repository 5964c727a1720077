package compliance

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// Errors Verify wraps, for callers that branch on what failed.
var (
	ErrMalformed  = errors.New("the report is not a compliance report")
	ErrKey        = errors.New("the report was built with another ledger key")
	ErrCheckpoint = errors.New("the report's checkpoint does not verify")
	ErrEntry      = errors.New("a ledger entry in the report does not verify")
	ErrStatement  = errors.New("the report does not match its ledger entries")
)

// Verified is what Verify checked.
type Verified struct {
	Entries    int
	Checkpoint checkpoint.Checkpoint
	Report     *Report
}

// Marshal is the JSON form of r that Rampart writes and Verify expects,
// byte for byte.
func Marshal(r *Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Verify checks a report's JSON offline with v, the ledger's verifier key
// from a trusted place: the checkpoint's signature, each entry's signature
// and its inclusion proof against the checkpoint's root, and that every
// statement is what Build derives from those entries (the file must be,
// byte for byte, what Marshal writes). The error names the first thing
// that fails: the entry, or the statement's JSON path with both values.
func Verify(data []byte, v *checkpoint.Verifier) (*Verified, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if r.Format != Format {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, r.Format, Format)
	}
	if r.Ledger.Key != v.Key() {
		return nil, fmt.Errorf("%w: the report names key %s, the trusted key is %s", ErrKey, r.Ledger.Key, v.Key())
	}
	cp, err := v.Open([]byte(r.Ledger.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	if cp.Size != r.Ledger.Size || cp.Root != r.Ledger.Root {
		return nil, fmt.Errorf("%w: ledger.size/ledger.root say size %d, root %s; the signed checkpoint says size %d, root %s",
			ErrCheckpoint, r.Ledger.Size, r.Ledger.Root, cp.Size, cp.Root)
	}
	for i, pe := range r.Entries {
		if err := verifyEntry(pe, v, cp); err != nil {
			return nil, fmt.Errorf("%w: entries[%d] (ledger entry %d): %w", ErrEntry, i, pe.Index, err)
		}
	}
	rebuilt, err := Build(InputOf(&r))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStatement, err)
	}
	want, err := Marshal(rebuilt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(want, data) {
		return nil, fmt.Errorf("%w: %s", ErrStatement, difference(data, want))
	}
	return &Verified{Entries: len(r.Entries), Checkpoint: cp, Report: &r}, nil
}

// verifyEntry checks one entry's signature, canonical form, index and
// inclusion in the checkpoint's tree. An entry the ledger wrote in a bundle
// has no signature of its own: its inclusion in the signed checkpoint's
// tree is what vouches for it (decision 0028).
func verifyEntry(pe ProvenEntry, v *checkpoint.Verifier, cp checkpoint.Checkpoint) error {
	data := []byte(pe.Entry)
	if pe.Signature != "" {
		if err := v.CheckEntry(data, pe.Signature); err != nil {
			return err
		}
	}
	e, err := entry.Unmarshal(data)
	if err != nil {
		return err
	}
	if pe.Index < 0 || uint64(pe.Index) != e.Index {
		return fmt.Errorf("the entry says index %d", e.Index)
	}
	if pe.Index >= cp.Size {
		return fmt.Errorf("index %d is beyond the checkpoint's size %d", pe.Index, cp.Size)
	}
	leaf := tlog.RecordHash(data)
	if leaf != pe.LeafHash {
		return fmt.Errorf("leafHash %s is not the entry's hash %s", pe.LeafHash, leaf)
	}
	if err := tlog.CheckRecord(pe.Proof, cp.Size, cp.Root, pe.Index, leaf); err != nil {
		return fmt.Errorf("the inclusion proof does not lead to the checkpoint's root (size %d): %w", cp.Size, err)
	}
	return nil
}

// difference names the first JSON value where got differs from want, or,
// when they hold the same values, the first differing byte.
func difference(got, want []byte) string {
	var g, w any
	if json.Unmarshal(got, &g) == nil && json.Unmarshal(want, &w) == nil {
		if path, gv, wv, ok := firstDiff("", g, w); ok {
			return fmt.Sprintf("%s: the report says %s; its ledger entries give %s", path, gv, wv)
		}
	}
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	return fmt.Sprintf("byte %d differs from the report rampart writes from these entries (same values, other formatting)", n)
}

func firstDiff(path string, g, w any) (string, string, string, bool) {
	switch gv := g.(type) {
	case map[string]any:
		wv, ok := w.(map[string]any)
		if !ok {
			break
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range gv {
				if !yield(k) {
					return
				}
			}
			for k := range wv {
				if _, dup := gv[k]; !dup && !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			if p, a, b, ok := firstDiff(join(path, k), gv[k], wv[k]); ok {
				return p, a, b, true
			}
		}
		return "", "", "", false
	case []any:
		wv, ok := w.([]any)
		if !ok {
			break
		}
		for i := range min(len(gv), len(wv)) {
			if p, a, b, ok := firstDiff(path+"["+strconv.Itoa(i)+"]", gv[i], wv[i]); ok {
				return p, a, b, true
			}
		}
		if len(gv) != len(wv) {
			return path, fmt.Sprintf("%d items", len(gv)), fmt.Sprintf("%d items", len(wv)), true
		}
		return "", "", "", false
	}
	if reflect.DeepEqual(g, w) {
		return "", "", "", false
	}
	return cmp.Or(path, "(document)"), show(g), show(w), true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func show(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
