// Package verify checks a whole ledger: every entry parses, sits at its own
// index, is signed by the ledger key, and records a new RAMPART message; the
// Merkle tree recomputed from the entries matches every signed checkpoint; and
// successive checkpoints are consistent. It names the first entry that fails.
//
// It is public so that the rampart CLI (`rampart ledger verify`) can run the
// same checks as the ledger service's tests.
package verify

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
)

// Entry is one ledger entry as stored: the canonical entry bytes and either
// the value of its entry.SignatureHeader (an entry written one per LEDGER
// message, before bundles) or, for an entry of a bundle, the leaf hash the
// bundle stored for it (Leaf). A bundled entry carries no signature: the
// signed checkpoints that cover it authenticate it, and its stored leaf hash
// names it by index when its bytes were changed.
type Entry struct {
	Data      []byte
	Signature string
	// Leaf is the stored leaf hash of an entry read from a bundle; nil for
	// a signed entry.
	Leaf *tlog.Hash
}

// Entries returns the entries of a LEDGER message, in order.
func Entries(m bundle.Message) []Entry {
	out := make([]Entry, len(m.Entries))
	for i, e := range m.Entries {
		out[i].Data = e
		if m.First < 0 {
			out[i].Signature = m.Signature
		} else {
			out[i].Leaf = &m.Leaves[i]
		}
	}
	return out
}

// Reasons a ledger fails verification, wrapped by Error.Err.
var (
	ErrEntryMalformed        = errors.New("entry does not parse")
	ErrEntrySignature        = errors.New("entry signature does not verify")
	ErrEntryLeaf             = errors.New("entry does not match the leaf hash stored with it")
	ErrEntryIndex            = errors.New("entry index is not its position")
	ErrEntryOrder            = errors.New("entry stream sequence does not increase")
	ErrDuplicateEvent        = errors.New("event recorded twice")
	ErrCheckpointSignature   = errors.New("checkpoint signature does not verify")
	ErrCheckpointOrder       = errors.New("checkpoint size decreases")
	ErrCheckpointBeyondLog   = errors.New("checkpoint covers entries the log does not have")
	ErrCheckpointRoot        = errors.New("checkpoint root does not match the entries")
	ErrCheckpointConsistency = errors.New("checkpoints are not consistent")
	ErrNotPinned             = errors.New("entries are not covered by the checkpoint they were pinned to")
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
// got, also when Log or Checker.Result returns an error.
type Result struct {
	Entries     int64     // entries checked
	Root        tlog.Hash // root over all entries
	Checkpoints int       // checkpoints checked
	// Latest is the last checkpoint, if any checkpoint verified.
	Latest *checkpoint.Checkpoint
	// LatestNote is Latest as signed (the note), to be kept as a trusted
	// head (see Extends).
	LatestNote []byte
	// Unanchored is the number of entries after the latest checkpoint; they
	// are covered by their own signatures only.
	Unanchored int64
	// SignaturesChecked is the number of entries whose own signature was
	// verified: all of them, or with Checker.Pin only those after the
	// pinned size (the others are vouched for by a signed checkpoint).
	SignaturesChecked int64
	// Unsigned is the number of entries after the latest checkpoint that
	// came from bundles: they carry no signature of their own, so nothing
	// authenticates them until a checkpoint covers them (the ledger signs
	// one every interval and on shutdown). They are checked for form,
	// index, order and duplicates like every entry.
	Unsigned int64
	// Bundled is the number of entries read from bundles (decision 0028):
	// they carry no signature of their own, whatever the options.
	Bundled int64
}

// entryCheck is the per-entry work that does not depend on other entries,
// done in parallel.
type entryCheck struct {
	leaf      tlog.Hash
	index     uint64
	streamSeq uint64
	dedupKey  eventKey // for events; zero for dead letters
	isEvent   bool
	err       *Error
}

// eventKey identifies an event by a hash of its source and id, so that the
// duplicate check keeps 16 bytes per event rather than the strings.
type eventKey [16]byte

func keyOf(source, id string) eventKey {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var k eventKey
	copy(k[:], h.Sum(nil))
	return k
}

// batchSize is how many entries a Checker holds before checking them, in
// parallel: enough to keep GOMAXPROCS workers busy, small enough that
// memory does not grow with the log. A variable so that tests can cross
// batch boundaries with small logs.
var batchSize = 4096

// Checker verifies a ledger streamed to it: every entry in LEDGER order with
// Entry, then every checkpoint in LEDGER_CHECKPOINTS order with Checkpoint,
// then Result. It holds one batch of entries at a time, so its memory is the
// Merkle tree's stored hashes (about 64 bytes per entry) and a 16-byte key
// per event for the duplicate check, however long the log.
type Checker struct {
	v      *checkpoint.Verifier
	tree   *tree.Tree
	batch  []Entry
	checks []entryCheck
	// spare is the batch buffer not in use; done is closed when the
	// batch checked in the background is done (flush).
	spare  []Entry
	done   chan struct{}
	fed    int64 // entries given to Entry
	pinned int64 // entries below this are not signature-checked one by one
	sigs   int64 // entries whose signature was checked
	// bundled are the runs [from, to) of positions of entries from bundles.
	bundled [][2]int64

	// Entry results.
	entries  int64 // entries added to the tree
	entryErr *Error
	seen     map[eventKey]int64
	lastSeq  uint64

	// Checkpoint results.
	cpErr       *Error
	cpEnd       int64 // size of the range the failing checkpoint covers
	covered     int64 // size of the largest checkpoint that matched so far
	prev        *checkpoint.Checkpoint
	prevNote    []byte
	checkpoints int
	entriesDone bool

	err error // a failure of the tree itself
}

// NewChecker returns a Checker for a ledger signed by v's key.
func NewChecker(v *checkpoint.Verifier) *Checker {
	return &Checker{
		v:      v,
		tree:   tree.New(),
		batch:  make([]Entry, 0, batchSize),
		spare:  make([]Entry, 0, batchSize),
		checks: make([]entryCheck, batchSize), // reused by every batch
		seen:   map[eventKey]int64{},
	}
}

// Pin tells the Checker, before the first Entry, that a checkpoint of size n
// signed with its key is among those that Checkpoint will be given. The
// entries below n then do not have their own signatures verified: the signed
// root pins their exact bytes, so their signatures add nothing once that
// checkpoint matches the tree (the ledger's restart relies on the same fact).
// Every other check (parsing, canonical form, index, order, duplicates, all
// checkpoints and their consistency) is unchanged. If no checkpoint of at
// least size n matches, Result fails with ErrNotPinned.
//
// A bad entry below n is then reported by the checkpoint that does not match
// it, which names only the range of entries that checkpoint vouches for;
// Stream checks again without Pin to name the entry.
func (c *Checker) Pin(n int64) {
	if c.fed > 0 {
		panic("verify: Checker.Pin after Entry")
	}
	c.pinned = n
	// The tree will hold at least n leaves: size it once. A checkpoint
	// verified with the key is the ledger's own word, but the room is
	// bounded all the same.
	c.tree = tree.WithCapacity(min(n, maxPresized))
	// So is the duplicate index: growing a map of a million keys copies it
	// over and over.
	c.seen = make(map[eventKey]int64, min(n, maxPresized))
}

// maxPresized bounds the leaves Pin makes room for up front (64 bytes each).
const maxPresized = 1 << 24

// Entry adds the next LEDGER message. The Checker keeps e until its batch is
// checked; the caller must not change e.Data afterwards.
func (c *Checker) Entry(e Entry) {
	if c.entriesDone {
		panic("verify: Checker.Entry after Checkpoint or Result")
	}
	if e.Leaf != nil {
		pos := c.fed
		if n := len(c.bundled); n > 0 && c.bundled[n-1][1] == pos {
			c.bundled[n-1][1]++
		} else {
			c.bundled = append(c.bundled, [2]int64{pos, pos + 1})
		}
	}
	c.fed++
	c.batch = append(c.batch, e)
	if len(c.batch) == batchSize {
		c.flush()
	}
}

// flush checks the buffered entries: signatures, parsing and hashing in
// parallel, then the checks that depend on earlier entries in order. The
// tree is built over the bytes as stored, also the bad ones: checkpoints are
// compared with what is really in the log.
//
// The checks run in the background while the caller reads the next batch:
// flush waits for the batch before, then hands this one over.
func (c *Checker) flush() {
	c.wait()
	if len(c.batch) == 0 || c.err != nil {
		c.batch = c.batch[:0]
		return
	}
	batch := c.batch
	c.batch, c.spare = c.spare[:0], nil
	done := make(chan struct{})
	c.done = done
	go func() {
		defer close(done)
		c.check(batch)
		// Drop the references to the entry bytes.
		clear(batch)
		c.spare = batch[:0]
	}()
}

// wait returns once the batch in the background, if any, is checked.
func (c *Checker) wait() {
	if c.done != nil {
		<-c.done
		c.done = nil
	}
}

// check checks one batch; see flush.
func (c *Checker) check(batch []Entry) {
	checks := c.checks[:len(batch)]
	checkEntries(c.entries, batch, checks, c.v, c.pinned)
	for i, e := range batch {
		if e.Leaf == nil && c.entries+int64(i) >= c.pinned {
			c.sigs++
		}
	}
	for i := range checks {
		ck := &checks[i]
		pos := c.entries
		if _, err := c.tree.AppendHash(ck.leaf); err != nil {
			c.err = fmt.Errorf("building tree at entry %d: %w", pos, err)
			break
		}
		c.entries++
		if c.entryErr != nil {
			continue
		}
		idx, inLog := entry.Position(ck.index)
		switch {
		case ck.err != nil:
			c.entryErr = ck.err
		case !inLog:
			c.entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrEntryIndex,
				Reason: fmt.Sprintf("entry at position %d says index %d, beyond any log", pos, ck.index)}
		case pos == 0 && idx > 0:
			c.entryErr = &Error{Index: 0, Checkpoint: -1, Err: fmt.Errorf("%w: %w", ErrEntriesMissing, ErrEntryIndex),
				Reason: fmt.Sprintf("the first %s entries are missing: the log starts at entry %s", Count(idx), Count(idx))}
		case idx > pos:
			c.entryErr = &Error{Index: pos, Checkpoint: -1, Err: fmt.Errorf("%w: %w", ErrEntriesMissing, ErrEntryIndex),
				Reason: fmt.Sprintf("entries %s to %s are missing: entry %s follows entry %s", Count(pos), Count(idx-1), Count(idx), Count(pos-1))}
		case idx != pos:
			c.entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrEntryIndex,
				Reason: fmt.Sprintf("entry at position %d says index %d", pos, ck.index)}
		case pos > 0 && ck.streamSeq <= c.lastSeq:
			c.entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrEntryOrder,
				Reason: fmt.Sprintf("stream sequence %d after %d", ck.streamSeq, c.lastSeq)}
		case ck.isEvent:
			if first, dup := c.seen[ck.dedupKey]; dup {
				c.entryErr = &Error{Index: pos, Checkpoint: -1, Err: ErrDuplicateEvent,
					Reason: fmt.Sprintf("event already recorded as entry %d", first)}
			} else {
				c.seen[ck.dedupKey] = pos
			}
		}
		c.lastSeq = ck.streamSeq
	}
}

// Checkpoint checks the next signed checkpoint against the entries. It must
// come after the last Entry. After the first bad checkpoint the rest are
// not looked at.
func (c *Checker) Checkpoint(signed []byte) {
	c.endEntries()
	if c.cpErr != nil || c.err != nil {
		return
	}
	c.cpErr, c.cpEnd, c.err = c.checkCheckpoint(signed)
}

func (c *Checker) endEntries() {
	if !c.entriesDone {
		c.flush()
		c.wait()
		c.entriesDone = true
	}
}

// Result reports what was verified and the first problem found, as a *Error
// (see Log for which problem is first).
func (c *Checker) Result() (*Result, error) {
	c.endEntries()
	res := &Result{Entries: c.entries, Checkpoints: c.checkpoints, Latest: c.prev, LatestNote: c.prevNote, SignaturesChecked: c.sigs}
	if c.err != nil {
		return res, c.err
	}
	size, root, err := c.tree.Root()
	if err != nil {
		return res, err
	}
	res.Root = root
	res.Unanchored = size
	if c.prev != nil {
		res.Unanchored = size - c.prev.Size
	}
	for _, r := range c.bundled {
		res.Unsigned += max(0, r[1]-max(r[0], size-res.Unanchored))
		res.Bundled += r[1] - r[0]
	}
	switch {
	case c.entryErr != nil && (c.cpErr == nil || c.cpErr.Index < 0 || c.entryErr.Index < c.cpEnd):
		// A bad checkpoint root over a range that holds a bad entry is
		// explained by that entry, which is the more precise report.
		return res, c.entryErr
	case c.cpErr != nil:
		return res, c.cpErr
	case c.covered < min(c.pinned, c.entries):
		return res, &Error{Index: c.covered, Checkpoint: -1, Err: ErrNotPinned,
			Reason: fmt.Sprintf("entries %d..%d were to be vouched for by a checkpoint of size %d, but the checkpoints verified cover %d", c.covered, min(c.pinned, c.entries)-1, c.pinned, c.covered)}
	}
	return res, nil
}

// Log verifies entries (in LEDGER stream order) and signed checkpoints (in
// LEDGER_CHECKPOINTS stream order) with the ledger's verifier key. It returns
// a *Error for the first problem found. An entry problem is reported unless
// a checkpoint fails over a range that ends before the bad entry: entry
// checks name the exact entry, a checkpoint only a range.
//
// Log is a Checker fed from slices; to verify a log without holding it in
// memory, feed a Checker page by page (client.Verify does).
func Log(entries []Entry, checkpoints [][]byte, v *checkpoint.Verifier) (*Result, error) {
	c := NewChecker(v)
	for _, e := range entries {
		c.Entry(e)
	}
	for _, cp := range checkpoints {
		c.Checkpoint(cp)
	}
	return c.Result()
}

// checkEntries parses, signature-checks (from position pinned on) and hashes
// entries (the first of which is at position first) into checks, spreading
// the work over GOMAXPROCS goroutines (Ed25519 verification dominates).
func checkEntries(first int64, entries []Entry, checks []entryCheck, v *checkpoint.Verifier, pinned int64) {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(entries)/256))
	chunk := (len(entries) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(entries); lo += chunk {
		hi := min(lo+chunk, len(entries))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				pos := first + int64(i)
				checks[i] = checkEntry(pos, entries[i], v, pos >= pinned)
			}
		})
	}
	wg.Wait()
}

func checkEntry(pos int64, in Entry, v *checkpoint.Verifier, checkSig bool) entryCheck {
	c := entryCheck{leaf: tlog.RecordHash(in.Data)}
	// The signature (or stored leaf hash) first: a changed byte is then
	// reported as tampering, whatever it did to the JSON.
	if in.Leaf != nil {
		if *in.Leaf != c.leaf {
			c.err = &Error{Index: pos, Checkpoint: -1, Err: ErrEntryLeaf,
				Reason: "its bytes do not match the leaf hash its bundle stored for it: the entry (or the hash) was changed after the ledger wrote it"}
			return c
		}
	} else if !checkSig {
		// Pinned by a checkpoint (Checker.Pin).
	} else if err := v.CheckEntry(in.Data, in.Signature); err != nil {
		c.err = &Error{Index: pos, Checkpoint: -1, Err: fmt.Errorf("%w: %w", ErrEntrySignature, err), Reason: err.Error()}
		return c
	}
	// ReadHead accepts exactly what entry.Unmarshal accepts, without
	// building the entry.
	e, err := entry.ReadHead(in.Data)
	if err != nil {
		c.err = &Error{Index: pos, Checkpoint: -1, Err: fmt.Errorf("%w: %w", ErrEntryMalformed, err), Reason: err.Error()}
		return c
	}
	c.index, c.streamSeq = e.Index, e.StreamSeq
	if e.Kind == entry.KindEvent {
		c.dedupKey, c.isEvent = keyOf(e.Source, e.EventID), true
	}
	return c
}

// Stream verifies a log that read feeds to a Checker (every entry, then every
// checkpoint). With pinned > 0, the size of a checkpoint signed with v's key
// that read will pass on (the latest, opened by the caller), the entries it
// covers are not signature-checked one by one (Checker.Pin); if that finds
// a problem, the log is read and checked again with every signature, so that
// the error names the first bad entry as Log does. read is called once or
// twice and must feed the same log each time.
func Stream(v *checkpoint.Verifier, pinned int64, read func(*Checker) error) (*Result, error) {
	c := NewChecker(v)
	if pinned > 0 {
		c.Pin(pinned)
	}
	if err := read(c); err != nil {
		return nil, err
	}
	res, err := c.Result()
	var ve *Error
	if pinned <= 0 || !errors.As(err, &ve) {
		return res, err
	}
	c = NewChecker(v)
	if err := read(c); err != nil {
		return nil, err
	}
	return c.Result()
}

// checkCheckpoint opens checkpoint number c.checkpoints and compares it with
// the tree. It returns the problem as a *Error with the end (size) of the
// range of entries the failing checkpoint covers; the error result is for
// failures of the tree itself.
func (c *Checker) checkCheckpoint(signed []byte) (*Error, int64, error) {
	k := c.checkpoints
	c.checkpoints++
	size := c.tree.Size()
	cp, err := c.v.Open(signed)
	if err != nil {
		return &Error{Index: -1, Checkpoint: k, Err: fmt.Errorf("%w: %w", ErrCheckpointSignature, err), Reason: err.Error()}, 0, nil
	}
	prev := c.prev
	if prev != nil && cp.Size < prev.Size {
		return &Error{Index: -1, Checkpoint: k, Err: ErrCheckpointOrder,
			Reason: fmt.Sprintf("size %d after size %d", cp.Size, prev.Size)}, 0, nil
	}
	if cp.Size > size {
		return &Error{Index: size, Checkpoint: k, Err: ErrCheckpointBeyondLog,
			Reason: fmt.Sprintf("checkpoint covers %d entries but the log has %d: entries are missing from %d on", cp.Size, size, size)}, size, nil
	}
	root, err := c.tree.RootAt(cp.Size)
	if err != nil {
		return nil, 0, err
	}
	if root != cp.Root {
		e := &Error{Index: -1, Checkpoint: k, Err: ErrCheckpointRoot,
			Reason: fmt.Sprintf("signed root at size %d does not match the entries", cp.Size)}
		if cp.Size > c.covered {
			e.Index = c.covered
			e.Reason = fmt.Sprintf("signed root at size %d does not match entries %d..%d (the ones no earlier checkpoint vouches for)", cp.Size, c.covered, cp.Size-1)
		}
		return e, cp.Size, nil
	}
	if prev != nil && prev.Size > 0 {
		// Both roots match the recomputed tree, so this holds unless the
		// tree code is wrong; it is the check a client holding only the
		// two checkpoints would run.
		p, err := c.tree.ConsistencyProof(prev.Size, cp.Size)
		if err != nil {
			return nil, 0, err
		}
		if err := tlog.CheckTree(p, cp.Size, cp.Root, prev.Size, prev.Root); err != nil {
			return &Error{Index: prev.Size, Checkpoint: k, Err: fmt.Errorf("%w: %w", ErrCheckpointConsistency, err),
				Reason: fmt.Sprintf("size %d is not consistent with size %d: %v", cp.Size, prev.Size, err)}, cp.Size, nil
		}
	}
	c.covered = cp.Size
	c.prev, c.prevNote = &cp, signed
	return nil, 0, nil
}
