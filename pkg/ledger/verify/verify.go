// Package verify checks a whole ledger: every entry parses, sits at its own
// index, is signed by the ledger key, and records a new RAMPART message; the
// Merkle tree recomputed from the entries matches every signed checkpoint; and
// successive checkpoints are consistent. It names the first entry that fails.
//
// It is public so that the rampart CLI (`rampart ledger verify`) can run the
// same checks as the ledger service's tests.
package verify

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
)

// Entry is one LEDGER stream message: the canonical entry bytes and the value
// of its entry.SignatureHeader.
type Entry struct {
	Data      []byte
	Signature string
}

// Reasons a ledger fails verification, wrapped by Error.Err.
var (
	ErrEntryMalformed        = errors.New("entry does not parse")
	ErrEntrySignature        = errors.New("entry signature does not verify")
	ErrEntryIndex            = errors.New("entry index is not its position")
	ErrEntryOrder            = errors.New("entry stream sequence does not increase")
	ErrDuplicateEvent        = errors.New("event recorded twice")
	ErrCheckpointSignature   = errors.New("checkpoint signature does not verify")
	ErrCheckpointOrder       = errors.New("checkpoint size decreases")
	ErrCheckpointBeyondLog   = errors.New("checkpoint covers entries the log does not have")
	ErrCheckpointRoot        = errors.New("checkpoint root does not match the entries")
	ErrCheckpointConsistency = errors.New("checkpoints are not consistent")
)

// Error reports the first problem found.
type Error struct {
	// Index is the first entry that does not match, or -1 when the problem
	// is in a checkpoint that no entry can be blamed for (for example a
	// forged signature on a checkpoint whose entries all check out).
	Index int64
	// Checkpoint is the position of the checkpoint involved, or -1.
	Checkpoint int
	// Reason explains the problem in a sentence.
	Reason string
	// Err is one of the Err* reasons above, possibly wrapping a cause.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Index >= 0 && e.Checkpoint >= 0:
		return fmt.Sprintf("ledger entry %d (checkpoint %d): %s", e.Index, e.Checkpoint, e.Reason)
	case e.Index >= 0:
		return fmt.Sprintf("ledger entry %d: %s", e.Index, e.Reason)
	default:
		return fmt.Sprintf("ledger checkpoint %d: %s", e.Checkpoint, e.Reason)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Result describes what was verified. It is filled in as far as verification
// got, also when Log returns an error.
type Result struct {
	Entries     int64     // entries checked
	Root        tlog.Hash // root over all entries
	Checkpoints int       // checkpoints checked
	// Latest is the last checkpoint, if any checkpoint verified.
	Latest *checkpoint.Checkpoint
	// Unanchored is the number of entries after the latest checkpoint; they
	// are covered by their own signatures only.
	Unanchored int64
}

// entryCheck is the per-entry work that does not depend on other entries,
// done in parallel.
type entryCheck struct {
	leaf      tlog.Hash
	index     uint64
	streamSeq uint64
	dedupKey  string // source + "\x00" + eventId for events
	err       *Error
}

// Log verifies entries (in LEDGER stream order) and signed checkpoints (in
// LEDGER_CHECKPOINTS stream order) with the ledger's verifier key. It returns
// a *Error for the first problem found. An entry problem is reported unless
// a checkpoint fails over a range that ends before the bad entry: entry
// checks name the exact entry, a checkpoint only a range.
func Log(entries []Entry, checkpoints [][]byte, v *checkpoint.Verifier) (*Result, error) {
	res := &Result{}
	checks := checkEntries(entries, v)

	// Sequential checks, and the tree over the bytes as stored (also the
	// bad ones: checkpoints are compared with what is really in the log).
	t := tree.New()
	var entryErr *Error
	seen := make(map[string]int64, len(entries))
	var lastSeq uint64
	for i := range checks {
		c := &checks[i]
		if _, err := t.AppendHash(c.leaf); err != nil {
			return res, fmt.Errorf("building tree at entry %d: %w", i, err)
		}
		if entryErr != nil {
			continue
		}
		pos := int64(i)
		switch {
		case c.err != nil:
			entryErr = c.err
		case c.index != uint64(pos):
			entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrEntryIndex,
				Reason: fmt.Sprintf("entry at position %d says index %d", pos, c.index)}
		case pos > 0 && c.streamSeq <= lastSeq:
			entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrEntryOrder,
				Reason: fmt.Sprintf("stream sequence %d after %d", c.streamSeq, lastSeq)}
		default:
			if c.dedupKey != "" {
				if first, dup := seen[c.dedupKey]; dup {
					entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrDuplicateEvent,
						Reason: fmt.Sprintf("event already recorded as entry %d", first)}
				}
				seen[c.dedupKey] = pos
			}
		}
		lastSeq = c.streamSeq
	}
	res.Entries = int64(len(entries))
	size, root, err := t.Root()
	if err != nil {
		return res, err
	}
	res.Root = root

	cpErr, cpEnd, err := checkCheckpoints(checkpoints, v, t, res)
	if err != nil {
		return res, err
	}
	if res.Latest != nil {
		res.Unanchored = size - res.Latest.Size
	} else {
		res.Unanchored = size
	}
	switch {
	case entryErr != nil && (cpErr == nil || cpErr.Index < 0 || entryErr.Index < cpEnd):
		// A bad checkpoint root over a range that holds a bad entry is
		// explained by that entry, which is the more precise report.
		return res, entryErr
	case cpErr != nil:
		return res, cpErr
	}
	return res, nil
}

// checkEntries parses, signature-checks and hashes every entry, spreading the
// work over GOMAXPROCS goroutines (Ed25519 verification dominates).
func checkEntries(entries []Entry, v *checkpoint.Verifier) []entryCheck {
	checks := make([]entryCheck, len(entries))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(entries)/256))
	chunk := (len(entries) + workers - 1) / max(1, workers)
	var wg sync.WaitGroup
	for lo := 0; lo < len(entries); lo += chunk {
		hi := min(lo+chunk, len(entries))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				checks[i] = checkEntry(int64(i), entries[i], v)
			}
		})
	}
	wg.Wait()
	return checks
}

func checkEntry(pos int64, in Entry, v *checkpoint.Verifier) entryCheck {
	c := entryCheck{leaf: tlog.RecordHash(in.Data)}
	// The signature first: a changed byte is then reported as tampering,
	// whatever it did to the JSON.
	if err := v.CheckEntry(in.Data, in.Signature); err != nil {
		c.err = &Error{Index: pos, Checkpoint: -1, Err: fmt.Errorf("%w: %w", ErrEntrySignature, err), Reason: err.Error()}
		return c
	}
	e, err := entry.Unmarshal(in.Data)
	if err != nil {
		c.err = &Error{Index: pos, Checkpoint: -1, Err: fmt.Errorf("%w: %w", ErrEntryMalformed, err), Reason: err.Error()}
		return c
	}
	c.index, c.streamSeq = e.Index, e.StreamSeq
	if e.Kind == entry.KindEvent {
		c.dedupKey = e.Source + "\x00" + e.EventID
	}
	return c
}

// checkCheckpoints opens each checkpoint and compares it with the tree. It
// returns the first problem as a *Error with the end (size) of the range of
// entries the failing checkpoint covers; the error result is for failures of
// the tree itself.
func checkCheckpoints(checkpoints [][]byte, v *checkpoint.Verifier, t *tree.Tree, res *Result) (*Error, int64, error) {
	size := t.Size()
	// covered is the size of the largest checkpoint that matched so far:
	// entries below it are vouched for by a good checkpoint.
	var covered int64
	var prev *checkpoint.Checkpoint
	for k, signed := range checkpoints {
		res.Checkpoints = k + 1
		c, err := v.Open(signed)
		if err != nil {
			return &Error{Index: -1, Checkpoint: k, Err: fmt.Errorf("%w: %w", ErrCheckpointSignature, err), Reason: err.Error()}, 0, nil
		}
		if prev != nil && c.Size < prev.Size {
			return &Error{Index: -1, Checkpoint: k, Err: ErrCheckpointOrder,
				Reason: fmt.Sprintf("size %d after size %d", c.Size, prev.Size)}, 0, nil
		}
		if c.Size > size {
			return &Error{Index: size, Checkpoint: k, Err: ErrCheckpointBeyondLog,
				Reason: fmt.Sprintf("checkpoint covers %d entries but the log has %d: entries are missing from %d on", c.Size, size, size)}, size, nil
		}
		root, err := t.RootAt(c.Size)
		if err != nil {
			return nil, 0, err
		}
		if root != c.Root {
			e := &Error{Index: -1, Checkpoint: k, Err: ErrCheckpointRoot,
				Reason: fmt.Sprintf("signed root at size %d does not match the entries", c.Size)}
			if c.Size > covered {
				e.Index = covered
				e.Reason = fmt.Sprintf("signed root at size %d does not match entries %d..%d (the ones no earlier checkpoint vouches for)", c.Size, covered, c.Size-1)
			}
			return e, c.Size, nil
		}
		if prev != nil && prev.Size > 0 {
			// Both roots match the recomputed tree, so this holds unless
			// the tree code is wrong; it is the check a client holding
			// only the two checkpoints would run.
			p, err := t.ConsistencyProof(prev.Size, c.Size)
			if err != nil {
				return nil, 0, err
			}
			if err := tlog.CheckTree(p, c.Size, c.Root, prev.Size, prev.Root); err != nil {
				return &Error{Index: prev.Size, Checkpoint: k, Err: fmt.Errorf("%w: %w", ErrCheckpointConsistency, err),
					Reason: fmt.Sprintf("size %d is not consistent with size %d: %v", c.Size, prev.Size, err)}, c.Size, nil
			}
		}
		covered = c.Size
		prev = &c
		res.Latest = &c
	}
	return nil, 0, nil
}
