package tree

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func leaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "leaf %d", i)
	}
	return out
}

// naiveRoot is the RFC 6962 Merkle tree hash computed straight from the
// definition, to check the stored-hash bookkeeping against.
func naiveRoot(ls [][]byte) tlog.Hash {
	switch len(ls) {
	case 0:
		h, _ := tlog.TreeHash(0, nil)
		return h
	case 1:
		return tlog.RecordHash(ls[0])
	}
	k := 1
	for k*2 < len(ls) {
		k *= 2
	}
	return tlog.NodeHash(naiveRoot(ls[:k]), naiveRoot(ls[k:]))
}

func TestRootsAndProofs(t *testing.T) {
	ls := leaves(37)
	tr, err := FromLeaves(ls)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Size() != 37 {
		t.Fatalf("Size = %d, want 37", tr.Size())
	}
	for n := int64(1); n <= 37; n++ {
		t.Run(fmt.Sprintf("size %d", n), func(t *testing.T) {
			root, err := tr.RootAt(n)
			if err != nil {
				t.Fatal(err)
			}
			if want := naiveRoot(ls[:n]); root != want {
				t.Fatalf("RootAt(%d) = %v, want %v", n, root, want)
			}
			for i := int64(0); i < n; i++ {
				p, err := tr.InclusionProof(i, n)
				if err != nil {
					t.Fatalf("InclusionProof(%d, %d): %v", i, n, err)
				}
				if err := tlog.CheckRecord(p, n, root, i, tlog.RecordHash(ls[i])); err != nil {
					t.Fatalf("CheckRecord(%d, %d): %v", i, n, err)
				}
			}
			for m := int64(1); m <= n; m++ {
				p, err := tr.ConsistencyProof(m, n)
				if err != nil {
					t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
				}
				old, _ := tr.RootAt(m)
				if err := tlog.CheckTree(p, n, root, m, old); err != nil {
					t.Fatalf("CheckTree(%d, %d): %v", m, n, err)
				}
			}
		})
	}
	size, root, err := tr.Root()
	if err != nil || size != 37 || root != naiveRoot(ls) {
		t.Fatalf("Root() = %d, %v, %v", size, root, err)
	}
}

func TestRangeErrors(t *testing.T) {
	tr, err := FromLeaves(leaves(4))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"root beyond size", func() error { _, err := tr.RootAt(5); return err }},
		{"root negative", func() error { _, err := tr.RootAt(-1); return err }},
		{"leaf beyond size", func() error { _, err := tr.LeafHash(4); return err }},
		{"inclusion index == size", func() error { _, err := tr.InclusionProof(4, 4); return err }},
		{"inclusion size beyond tree", func() error { _, err := tr.InclusionProof(0, 5); return err }},
		{"inclusion size zero", func() error { _, err := tr.InclusionProof(0, 0); return err }},
		{"consistency from > to", func() error { _, err := tr.ConsistencyProof(3, 2); return err }},
		{"consistency from zero", func() error { _, err := tr.ConsistencyProof(0, 2); return err }},
		{"consistency to beyond tree", func() error { _, err := tr.ConsistencyProof(1, 5); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrRange) {
				t.Fatalf("error = %v, want ErrRange", err)
			}
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	tr := New()
	leaf := []byte(`{"index":0,"kind":"event"}`)
	for b.Loop() {
		if _, err := tr.Append(leaf); err != nil {
			b.Fatal(err)
		}
	}
}
