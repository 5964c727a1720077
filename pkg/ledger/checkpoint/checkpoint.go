// Package checkpoint writes, signs, parses and verifies ledger checkpoints in
// the C2SP tlog-checkpoint format (https://c2sp.org/tlog-checkpoint): a signed
// note (golang.org/x/mod/sumdb/note) whose text is
//
//	<origin>\n<tree size>\n<base64 root hash>\n
//
// It also holds the ledger key (key.go), which signs both checkpoints and
// individual entries.
package checkpoint

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultOrigin is the origin line (and key name) of the ledger's log.
const DefaultOrigin = "rampart.ledger"

// ErrMalformed is wrapped by errors for checkpoint text that does not parse.
var ErrMalformed = errors.New("malformed checkpoint")

// ErrSignature is wrapped by errors for a checkpoint whose signature is
// missing, unknown or invalid, or whose origin is not the key's.
var ErrSignature = errors.New("checkpoint signature")

// Checkpoint is the tree state a signed note commits to.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text returns the note text (the signed body) of c.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// Parse parses checkpoint note text (without signatures). Extension lines
// after the root are allowed by the format and ignored here; they are still
// covered by the signature.
func Parse(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: text does not end in a newline", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines, got %d lines", ErrMalformed, len(lines))
	}
	origin, sizeText, rootText := lines[0], lines[1], lines[2]
	if origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrMalformed)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("%w: size %q is not a canonical non-negative decimal", ErrMalformed, sizeText)
	}
	raw, err := base64.StdEncoding.DecodeString(rootText)
	if err != nil || len(raw) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root %q is not a base64 %d-byte hash", ErrMalformed, rootText, tlog.HashSize)
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], raw)
	return c, nil
}

// Sign returns the signed note for c. The checkpoint's origin must be the
// signer's key name.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	if c.Origin != s.Name() {
		return nil, fmt.Errorf("signing checkpoint with origin %q using key %q: %w", c.Origin, s.Name(), ErrSignature)
	}
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s.note)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint at size %d: %w", c.Size, err)
	}
	return msg, nil
}

// Open verifies a signed checkpoint note with v's key and parses it. The
// checkpoint's origin must equal the key name.
func (v *Verifier) Open(signed []byte) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(v.note))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("%w: not signed by %s", ErrSignature, v.Key())
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: invalid signature by %s", ErrSignature, v.Key())
		}
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c, err := Parse(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key name %q", ErrSignature, c.Origin, v.Name())
	}
	return c, nil
}

// Text returns the note text of a signed checkpoint without verifying it,
// for display.
func Text(signed []byte) string {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return string(signed)
	}
	return string(signed[:i+1])
}
