// Package tree keeps an RFC 6962 Merkle tree in memory on top of
// golang.org/x/mod/sumdb/tlog: every stored hash (leaf hashes and completed
// subtree hashes, about two per leaf) lives in one slice in tlog's stored-hash
// order, so roots and proofs for any earlier size can be computed cheaply.
package tree

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrRange is returned for an index or size outside the tree.
var ErrRange = errors.New("out of range")

// Tree is an append-only Merkle tree. It is safe for one writer and many
// concurrent readers.
type Tree struct {
	mu     sync.RWMutex
	hashes []tlog.Hash // stored hashes, indexed by tlog.StoredHashIndex
	size   int64
}

var _ tlog.HashReader = (*Tree)(nil)

// New returns an empty tree.
func New() *Tree { return &Tree{} }

// WithCapacity returns an empty tree with room for the stored hashes of n
// leaves, so that building a tree of a known size does not copy its hashes
// as they grow (a tree holds about 64 bytes per leaf).
func WithCapacity(n int64) *Tree {
	return &Tree{hashes: make([]tlog.Hash, 0, tlog.StoredHashCount(max(n, 0)))}
}

// FromLeaves builds a tree from leaves in order.
func FromLeaves(leaves [][]byte) (*Tree, error) {
	t := &Tree{hashes: make([]tlog.Hash, 0, tlog.StoredHashCount(int64(len(leaves))))}
	for _, l := range leaves {
		if _, err := t.Append(l); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ReadHashes implements tlog.HashReader over the stored hashes. The caller
// must hold t.mu (tlog calls it from inside Tree's methods).
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("reading stored hash %d of %d: %w", x, len(t.hashes), ErrRange)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// Append adds a leaf (the record bytes, hashed as an RFC 6962 leaf) and
// returns its index.
func (t *Tree) Append(leaf []byte) (int64, error) {
	return t.AppendHash(tlog.RecordHash(leaf))
}

// AppendHash adds a leaf given its RFC 6962 leaf hash (tlog.RecordHash) and
// returns its index.
func (t *Tree) AppendHash(h tlog.Hash) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.size
	hs, err := tlog.StoredHashesForRecordHash(n, h, t)
	if err != nil {
		return 0, fmt.Errorf("computing stored hashes for leaf %d: %w", n, err)
	}
	t.hashes = append(t.hashes, hs...)
	t.size++
	return n, nil
}

// Size returns the number of leaves.
func (t *Tree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Root returns the current size and the root hash at that size.
func (t *Tree) Root() (int64, tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h, err := tlog.TreeHash(t.size, t)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("computing root at size %d: %w", t.size, err)
	}
	return t.size, h, nil
}

// RootAt returns the root hash of the tree's first n leaves.
func (t *Tree) RootAt(n int64) (tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n < 0 || n > t.size {
		return tlog.Hash{}, fmt.Errorf("root at size %d of a tree of %d: %w", n, t.size, ErrRange)
	}
	h, err := tlog.TreeHash(n, t)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("computing root at size %d: %w", n, err)
	}
	return h, nil
}

// LeafHash returns the stored leaf hash of index i.
func (t *Tree) LeafHash(i int64) (tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i < 0 || i >= t.size {
		return tlog.Hash{}, fmt.Errorf("leaf %d of a tree of %d: %w", i, t.size, ErrRange)
	}
	return t.hashes[tlog.StoredHashIndex(0, i)], nil
}

// InclusionProof proves that leaf i is in the tree of size n (0 <= i < n <= Size).
func (t *Tree) InclusionProof(i, n int64) (tlog.RecordProof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n < 1 || n > t.size || i < 0 || i >= n {
		return nil, fmt.Errorf("inclusion of leaf %d at size %d in a tree of %d: %w", i, n, t.size, ErrRange)
	}
	p, err := tlog.ProveRecord(n, i, t)
	if err != nil {
		return nil, fmt.Errorf("proving leaf %d at size %d: %w", i, n, err)
	}
	return p, nil
}

// ConsistencyProof proves that the tree of size m is a prefix of the tree of
// size n (1 <= m <= n <= Size).
func (t *Tree) ConsistencyProof(m, n int64) (tlog.TreeProof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if m < 1 || m > n || n > t.size {
		return nil, fmt.Errorf("consistency of size %d with size %d in a tree of %d: %w", m, n, t.size, ErrRange)
	}
	p, err := tlog.ProveTree(n, m, t)
	if err != nil {
		return nil, fmt.Errorf("proving size %d consistent with size %d: %w", m, n, err)
	}
	return p, nil
}

// TileData returns the contents of tile t (C2SP tlog-tiles, tlog.Tile with
// height 8): the hashes of its W nodes, concatenated. The tile must lie
// within the tree.
func (t *Tree) TileData(tile tlog.Tile) ([]byte, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if tile.L < 0 || tile.L > 7 || tile.N < 0 || tile.W < 1 || tile.W > 1<<tile.H {
		return nil, fmt.Errorf("tile %s: %w", tile.Path(), ErrRange)
	}
	// The tile's nodes at level H*L are N*2^H .. N*2^H+W-1; they exist
	// when the tree has at least (N*2^H+W) * 2^(H*L) leaves.
	nodes := t.size >> uint(tile.H*tile.L)
	if tile.N > nodes>>tile.H || tile.N<<tile.H+int64(tile.W) > nodes {
		return nil, fmt.Errorf("tile %s of a tree of %d: %w", tile.Path(), t.size, ErrRange)
	}
	data, err := tlog.ReadTileData(tile, t)
	if err != nil {
		return nil, fmt.Errorf("reading tile %s: %w", tile.Path(), err)
	}
	return data, nil
}
