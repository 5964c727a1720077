package entry

import (
	"fmt"
	"math"
)

// An entry's Index is a uint64 in the format; the tree, the HTTP API and
// every count of entries use int64, as golang.org/x/mod/sumdb/tlog does.
// These are the only conversions between the two: a ledger never reaches
// 2^63 entries, so an index beyond that is one only a forged entry claims,
// and it names no position.

// Position is index as a position in the tree; ok is false for an index
// beyond math.MaxInt64.
func Position(index uint64) (pos int64, ok bool) {
	if index > math.MaxInt64 {
		return 0, false
	}
	return int64(index), true
}

// IndexOf is the entry index of tree position pos. A negative position is
// a bug of the caller: it panics.
func IndexOf(pos int64) uint64 {
	if pos < 0 {
		panic(fmt.Sprintf("ledger entry: negative tree position %d", pos))
	}
	return uint64(pos)
}
