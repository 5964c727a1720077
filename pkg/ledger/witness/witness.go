// Package witness keeps signed checkpoints (C2SP tlog-checkpoint notes)
// outside the ledger's streams, so that a ledger whose streams were deleted,
// truncated or rewritten can be told from a genuine one: whoever holds a
// checkpoint the ledger signed earlier knows how large, and with which root,
// the tree was.
//
// Two file layouts, both plain text:
//
//   - a log file (Log): every checkpoint appended as its signed note followed
//     by an empty line, oldest first, never rewritten; for an operator's
//     archive, a file shipped elsewhere, or a Git repository;
//   - a latest file (Latest): the one latest note, replaced atomically; the
//     ledger's own view of the largest tree it signed, and the last head
//     `rampart ledger verify` trusted.
//
// The files are not trusted for their content: whoever reads a checkpoint
// back verifies its signature with the ledger's key.
package witness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
)

// Witness receives every checkpoint the ledger signs and returns the latest
// one it holds.
type Witness interface {
	// Name says where the checkpoints are kept, for messages.
	Name() string
	// Add stores a signed checkpoint note.
	Add(signed []byte) error
	// Latest returns the last stored note, or nil when none is.
	Latest() ([]byte, error)
}

var (
	_ Witness = (*Log)(nil)
	_ Witness = (*Latest)(nil)
)

// ErrMalformed is wrapped when a file does not hold a checkpoint note where
// one should be.
var ErrMalformed = errors.New("malformed witness file")

// Latest keeps one checkpoint in a file, replaced atomically (a temporary
// file renamed over it, both synced).
type Latest struct {
	path string
	mu   sync.Mutex
}

// NewLatest returns the latest-checkpoint file at path; the file and its
// directory are created on the first Add.
func NewLatest(path string) *Latest { return &Latest{path: path} }

// Name implements Witness.
func (f *Latest) Name() string { return "file " + f.path }

// Path is the file's path.
func (f *Latest) Path() string { return f.path }

// Add replaces the stored note with signed.
func (f *Latest) Add(signed []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := checkNote(signed); err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	_, werr := tmp.Write(signed)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), f.path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", f.path, werr)
	}
	return syncDir(dir)
}

// Latest returns the stored note, or nil when the file does not exist.
func (f *Latest) Latest() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.path, err)
	}
	if err := checkNote(b); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return b, nil
}

// Log appends every checkpoint to a file: each signed note followed by an
// empty line.
type Log struct {
	path string
	mu   sync.Mutex
}

// NewLog returns the checkpoint log file at path; the file and its directory
// are created on the first Add.
func NewLog(path string) *Log { return &Log{path: path} }

// Name implements Witness.
func (f *Log) Name() string { return "witness file " + f.path }

// Add appends signed and syncs the file.
func (f *Log) Add(signed []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := checkNote(signed); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(f.path), err)
	}
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", f.path, err)
	}
	// One write: the note and its separator land together or not at all
	// as far as a reader of whole notes is concerned.
	_, werr := file.Write(append(bytes.Clone(signed), '\n'))
	if werr == nil {
		werr = file.Sync()
	}
	if cerr := file.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("appending to %s: %w", f.path, werr)
	}
	return nil
}

// tailSize is how much of the end of a log file Latest reads: many notes.
const tailSize = 64 << 10

// Latest returns the last note of the file, or nil when the file does not
// exist or is empty.
func (f *Log) Latest() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.path, err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.path, err)
	}
	off := max(info.Size()-tailSize, 0)
	b := make([]byte, info.Size()-off)
	if _, err := file.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", f.path, err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	note, err := lastNote(b, off == 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	return note, nil
}

// lastNote finds the last "<note>\n" in b. A note holds exactly one empty
// line (between its text and its signatures), and notes are separated by one,
// so the last note starts after the second-to-last empty line; whole says b
// is the whole file, so a single note may start at its beginning.
func lastNote(b []byte, whole bool) ([]byte, error) {
	if !bytes.HasSuffix(b, []byte("\n\n")) {
		return nil, fmt.Errorf("%w: it does not end in a note and an empty line (an interrupted write?)", ErrMalformed)
	}
	b = b[:len(b)-1]
	inner := bytes.LastIndex(b, []byte("\n\n"))
	if inner < 0 {
		return nil, fmt.Errorf("%w: its last note has no signature", ErrMalformed)
	}
	start := bytes.LastIndex(b[:inner], []byte("\n\n"))
	switch {
	case start >= 0:
		start += 2
	case whole:
		start = 0
	default:
		return nil, fmt.Errorf("%w: its last note is longer than %d bytes", ErrMalformed, tailSize)
	}
	note := b[start:]
	if err := checkNote(note); err != nil {
		return nil, err
	}
	return bytes.Clone(note), nil
}

// checkNote checks the shape of a signed note: text, an empty line,
// signature lines, a final newline. Signatures are checked by the reader.
func checkNote(b []byte) error {
	i := bytes.Index(b, []byte("\n\n"))
	if i < 0 || !bytes.HasSuffix(b, []byte("\n")) || i+2 >= len(b) || bytes.Count(b, []byte("\n\n")) != 1 {
		return fmt.Errorf("%w: not a signed note (text, an empty line, signature lines)", ErrMalformed)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Trusted returns the checkpoint w holds, its signature checked with v, or
// nil when w holds none.
func Trusted(w Witness, v *checkpoint.Verifier) (*checkpoint.Checkpoint, error) {
	signed, err := w.Latest()
	if err != nil || signed == nil {
		return nil, err
	}
	c, err := v.Open(signed)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint in %s does not verify with key %s: %w", w.Name(), v.Key(), err)
	}
	return &c, nil
}
