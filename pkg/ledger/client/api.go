package client

import (
	"encoding/json"

	"golang.org/x/mod/sumdb/tlog"
)

// The wire form of the ledger's query API. The ledger service encodes these;
// Client decodes them.

// Entry is one ledger entry: its index, the canonical entry bytes (the JSON
// document the signature or the checkpoints cover, verbatim) and either its
// signature (an entry written one per LEDGER message, before bundles) or,
// for an entry of a bundle, the leaf hash the bundle stored for it.
type Entry struct {
	Index     int64           `json:"index"`
	Entry     json.RawMessage `json:"entry"`
	Signature string          `json:"signature,omitempty"`
	Leaf      *tlog.Hash      `json:"leaf,omitempty"`
}

// Entries is the answer of GET /ledger/entries and GET /ledger/chains/{chain}.
type Entries struct {
	// Size is the number of committed entries.
	Size    int64   `json:"size"`
	Entries []Entry `json:"entries"`
	// Next is the `from` of the next page, absent on the last page.
	Next *int64 `json:"next,omitempty"`
}

// Checkpoints is the answer of GET /ledger/checkpoints: signed checkpoints
// (note text) in the order they were signed.
type Checkpoints struct {
	// Count is the number of checkpoints signed so far.
	Count       int64    `json:"count"`
	Checkpoints []string `json:"checkpoints"`
	// Next is the `from` of the next page, absent on the last page.
	Next *int64 `json:"next,omitempty"`
}

// Inclusion is the answer of GET /ledger/proof/inclusion.
type Inclusion struct {
	Index    int64       `json:"index"`
	Size     int64       `json:"size"`
	Root     tlog.Hash   `json:"root"`
	LeafHash tlog.Hash   `json:"leafHash"`
	Proof    []tlog.Hash `json:"proof"`
}

// Consistency is the answer of GET /ledger/proof/consistency.
type Consistency struct {
	From     int64       `json:"from"`
	To       int64       `json:"to"`
	FromRoot tlog.Hash   `json:"fromRoot"`
	ToRoot   tlog.Hash   `json:"toRoot"`
	Proof    []tlog.Hash `json:"proof"`
}
