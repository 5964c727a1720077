package verify

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
)

// A verifier that keeps the last tree head it trusted outside the ledger (as
// the Go checksum database client keeps its latest note) detects a ledger
// that was rewritten even when the rewrite is internally consistent: a
// smaller tree, or a tree whose first entries differ.
var (
	// ErrTreeShrank: the ledger's tree is smaller than one trusted before
	// (streams deleted, truncated, or the ledger rebuilt from zero).
	ErrTreeShrank = errors.New("tree shrank")
	// ErrTreeFork: the ledger's tree does not extend one trusted before
	// (entries changed, removed or inserted below the trusted size).
	ErrTreeFork = errors.New("tree forked")
	// ErrEntriesMissing: the log does not start at entry 0.
	ErrEntriesMissing = errors.New("entries are missing")
)

// Head names a tree head in messages: "size 5,051, root <base64>".
func Head(c checkpoint.Checkpoint) string {
	return "size " + Count(c.Size) + ", root " + base64.StdEncoding.EncodeToString(c.Root[:])
}

// Count formats n with thousands separators, as messages show sizes.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// Extends checks that the tree head cur extends the trusted head: it is at
// least as large and, for a larger one, proof is a valid consistency proof
// from trusted.Size to cur.Size. Both heads must already be verified
// checkpoints of the same log. The error wraps ErrTreeShrank or ErrTreeFork
// and names both heads; where says where the trusted head came from.
func Extends(trusted, cur checkpoint.Checkpoint, proof tlog.TreeProof, where string) error {
	switch {
	case cur.Size < trusted.Size:
		return fmt.Errorf("%w from %s to %s: the ledger's tree head (%s) is smaller than the one trusted before (%s, %s); "+
			"its streams were deleted, truncated or rebuilt from zero",
			ErrTreeShrank, Count(trusted.Size), Count(cur.Size), Head(cur), Head(trusted), where)
	case cur.Size == trusted.Size:
		if cur.Root != trusted.Root {
			return forked(trusted, cur, where, "the roots differ")
		}
		return nil
	case trusted.Size == 0:
		return nil
	}
	if err := tlog.CheckTree(proof, cur.Size, cur.Root, trusted.Size, trusted.Root); err != nil {
		return forked(trusted, cur, where, "the consistency proof fails: "+err.Error())
	}
	return nil
}

func forked(trusted, cur checkpoint.Checkpoint, where, why string) error {
	return fmt.Errorf("%w at size %s: the ledger's tree head (%s) does not extend the one trusted before (%s, %s): %s; "+
		"entries below size %s were changed",
		ErrTreeFork, Count(trusted.Size), Head(cur), Head(trusted), where, why, Count(trusted.Size))
}
