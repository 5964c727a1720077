package ledger

import (
	"fmt"
	"math"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// The ledger counts entries and tree positions with int64 (its tree, its
// HTTP API), entry indexes with uint64 (the entry format, entry.Position
// and entry.IndexOf convert) and JetStream messages with uint64. These
// convert the ledger's own values, which stay far below 2^63.

// position is one of the ledger's own entry indexes as a tree position.
func position(index uint64) int64 {
	pos, ok := entry.Position(index)
	if !ok {
		panic(fmt.Sprintf("ledger: entry index %d is beyond the tree", index))
	}
	return pos
}

// countOf is a JetStream sequence or count as the int64 the API and the
// messages show; it saturates at math.MaxInt64, which no stream reaches.
func countOf(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// seqOf is a non-negative position as a JetStream sequence count.
func seqOf(n int64) uint64 {
	if n < 0 {
		panic(fmt.Sprintf("ledger: negative count %d", n))
	}
	return uint64(n)
}
