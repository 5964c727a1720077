// Package bundle is the LEDGER message that carries several entries
// (docs/decisions/0028-ledger-entry-bundles.md): the data is a C2SP
// tlog-tiles entry bundle (https://c2sp.org/tlog-tiles: each entry as a
// big-endian uint16 length and its bytes), the headers say the index of the
// first entry, the leaf hash of every entry, and a MAC with which the ledger
// recognises its own messages. A bundle never crosses a 256-entry tile
// boundary, so the entry bundles of the tiles endpoint are concatenations of
// LEDGER bundles.
//
// A LEDGER message without FirstHeader is one entry in the format written
// before bundles: the entry bytes with their Ed25519 signature in
// entry.SignatureHeader. Readers handle both (Read).
package bundle

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// The headers of a bundle message.
const (
	// FirstHeader is the index of the bundle's first entry, in decimal.
	FirstHeader = "Rampart-Ledger-First"
	// LeavesHeader is the base64 of the leaf hashes (tlog.RecordHash) of
	// the bundle's entries, 32 bytes each, in order. A verifier compares
	// each entry with its stored hash, which names a changed entry by index;
	// what authenticates the entries is the signed checkpoint.
	LeavesHeader = "Rampart-Ledger-Leaves"
	// MACHeader is the base64 HMAC-SHA256 of the bundle with a key derived
	// from the ledger key (checkpoint.Signer.BundleMAC): only the ledger
	// can check it, to tell its own messages from forged ones.
	MACHeader = "Rampart-Ledger-MAC"
)

// TileWidth is the width of a C2SP tile: a bundle holds entries of one
// tile only.
const TileWidth = 256

// MaxEntry is the longest entry a bundle can hold (uint16 length). Longer
// entries are written one per message, signed, as before bundles.
const MaxEntry = 1<<16 - 1

// ErrMalformed is wrapped by the errors of Split and Read.
var ErrMalformed = errors.New("malformed entry bundle")

// Append adds one entry to bundle data b. The entry must not be longer than
// MaxEntry: a longer one is a bug of the caller, and panics.
func Append(b, e []byte) []byte {
	n := len(e)
	if n < 0 || n > MaxEntry {
		panic(fmt.Sprintf("entry bundle: an entry of %d bytes, longer than %d", n, MaxEntry))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	return append(b, e...)
}

// Split returns the entries of bundle data b, as sub-slices of b.
func Split(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
		}
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 || len(b) < 2+n {
			return nil, fmt.Errorf("%w: entry %d of %d bytes, %d left", ErrMalformed, len(out), n, len(b)-2)
		}
		out = append(out, b[2:2+n:2+n])
		b = b[2+n:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no entry", ErrMalformed)
	}
	return out, nil
}

// EncodeLeaves is the LeavesHeader value for leaves.
func EncodeLeaves(leaves []tlog.Hash) string {
	raw := make([]byte, 0, len(leaves)*tlog.HashSize)
	for _, h := range leaves {
		raw = append(raw, h[:]...)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// Message is one LEDGER message as readers see it: either a bundle (First
// >= 0) or one signed entry of the earlier format (First < 0).
type Message struct {
	// First is the index of the first entry of a bundle, -1 for a signed
	// entry.
	First int64
	// Entries are the entry bytes (one for a signed entry).
	Entries [][]byte
	// Leaves are the stored leaf hashes of a bundle's entries.
	Leaves []tlog.Hash
	// Signature is the signed entry's entry.SignatureHeader.
	Signature string
	// MAC is a bundle's MACHeader.
	MAC string
}

// Header is the part of a NATS header Read looks at.
type Header interface{ Get(string) string }

// Read decodes a LEDGER message. A message without FirstHeader is a signed
// entry, whatever its data; a message with it must be a well-formed bundle.
func Read(h Header, data []byte) (Message, error) {
	first := h.Get(FirstHeader)
	if first == "" {
		return Message{First: -1, Entries: [][]byte{data}, Signature: h.Get(entry.SignatureHeader)}, nil
	}
	f, err := strconv.ParseInt(first, 10, 64)
	if err != nil || f < 0 {
		return Message{}, fmt.Errorf("%w: %s %q is not an entry index", ErrMalformed, FirstHeader, first)
	}
	es, err := Split(data)
	if err != nil {
		return Message{}, err
	}
	if (f+int64(len(es))-1)/TileWidth != f/TileWidth {
		return Message{}, fmt.Errorf("%w: entries %d..%d cross a tile boundary", ErrMalformed, f, f+int64(len(es))-1)
	}
	raw, err := base64.StdEncoding.DecodeString(h.Get(LeavesHeader))
	if err != nil || len(raw) != len(es)*tlog.HashSize {
		return Message{}, fmt.Errorf("%w: %s does not hold %d leaf hashes", ErrMalformed, LeavesHeader, len(es))
	}
	leaves := make([]tlog.Hash, len(es))
	for i := range leaves {
		copy(leaves[i][:], raw[i*tlog.HashSize:])
	}
	return Message{First: f, Entries: es, Leaves: leaves, MAC: h.Get(MACHeader)}, nil
}
