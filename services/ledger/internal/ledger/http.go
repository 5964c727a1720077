package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// Handler serves the ledger's query API under /ledger/:
//
//	GET /ledger/entries?from=&to=&limit=     entries from index `from` (default 0) up to, not including, `to`
//	GET /ledger/entries?chainId=&from=&limit= the entries of one release chain, from index `from`
//	GET /ledger/checkpoint                   the latest signed checkpoint (note text)
//	GET /ledger/proof/inclusion?index=&size= inclusion proof of an entry in the tree of size `size`
//	GET /ledger/proof/consistency?from=&to=  consistency proof between two tree sizes
//	GET /ledger/key                          the verifier key
//
// `size` and `to` default to the latest checkpoint's size, so proofs match
// a signed root unless a caller asks otherwise.
func (l *Ledger) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ledger/entries", l.serveEntries)
	mux.HandleFunc("GET /ledger/checkpoint", l.serveCheckpoint)
	mux.HandleFunc("GET /ledger/proof/inclusion", l.serveInclusion)
	mux.HandleFunc("GET /ledger/proof/consistency", l.serveConsistency)
	mux.HandleFunc("GET /ledger/key", l.serveKey)
	return mux
}

// EntryJSON is one entry in an API response.
type EntryJSON struct {
	Index     int64           `json:"index"`
	Entry     json.RawMessage `json:"entry"`
	Signature string          `json:"signature"`
}

// EntriesJSON is the response of GET /ledger/entries.
type EntriesJSON struct {
	// Size is the number of committed entries.
	Size    int64       `json:"size"`
	Entries []EntryJSON `json:"entries"`
	// Next is the `from` of the next page, absent on the last page.
	Next *int64 `json:"next,omitempty"`
}

// InclusionJSON is the response of GET /ledger/proof/inclusion.
type InclusionJSON struct {
	Index    int64       `json:"index"`
	Size     int64       `json:"size"`
	Root     tlog.Hash   `json:"root"`
	LeafHash tlog.Hash   `json:"leafHash"`
	Proof    []tlog.Hash `json:"proof"`
}

// ConsistencyJSON is the response of GET /ledger/proof/consistency.
type ConsistencyJSON struct {
	From     int64       `json:"from"`
	To       int64       `json:"to"`
	FromRoot tlog.Hash   `json:"fromRoot"`
	ToRoot   tlog.Hash   `json:"toRoot"`
	Proof    []tlog.Hash `json:"proof"`
}

// errBadParam is an error the client caused (400).
type errBadParam struct{ msg string }

func (e errBadParam) Error() string { return e.msg }

func badParam(format string, args ...any) error { return errBadParam{fmt.Sprintf(format, args...)} }

// intParam reads a non-negative integer query parameter, or def when absent.
func intParam(r *http.Request, name string, def int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, badParam("parameter %s: %q is not a non-negative integer", name, s)
	}
	return v, nil
}

func (l *Ledger) writeError(w http.ResponseWriter, err error) {
	var bp errBadParam
	if errors.As(err, &bp) {
		http.Error(w, bp.msg, http.StatusBadRequest)
		return
	}
	l.log.Error("ledger API", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away
}

func (l *Ledger) serveEntries(w http.ResponseWriter, r *http.Request) {
	size := l.tree.Size()
	from, err := intParam(r, "from", 0)
	if err != nil {
		l.writeError(w, err)
		return
	}
	limit, err := intParam(r, "limit", int64(l.opts.PageSize))
	if err != nil {
		l.writeError(w, err)
		return
	}
	if limit == 0 || limit > int64(l.opts.PageSize) {
		l.writeError(w, badParam("parameter limit: must be between 1 and %d", l.opts.PageSize))
		return
	}
	q := r.URL.Query()
	var indexes []int64
	var next *int64
	if q.Has("chainId") {
		if q.Has("to") {
			l.writeError(w, badParam("parameter to: not allowed with chainId; page with from"))
			return
		}
		l.mu.RLock()
		chain := l.chains[q.Get("chainId")]
		l.mu.RUnlock()
		// chain is append-only and sorted; copy the page out of it.
		i, _ := slices.BinarySearch(chain, from)
		end := min(i+int(limit), len(chain))
		indexes = slices.Clone(chain[i:end])
		if end < len(chain) {
			n := chain[end]
			next = &n
		}
	} else {
		to, err := intParam(r, "to", size)
		if err != nil {
			l.writeError(w, err)
			return
		}
		switch {
		case to > size:
			l.writeError(w, badParam("parameter to: %d is beyond the ledger size %d", to, size))
			return
		case from > to:
			l.writeError(w, badParam("parameter from: %d is after to %d", from, to))
			return
		}
		end := min(to, from+limit)
		for i := from; i < end; i++ {
			indexes = append(indexes, i)
		}
		if end < to {
			next = &end
		}
	}
	out := EntriesJSON{Size: size, Entries: make([]EntryJSON, 0, len(indexes)), Next: next}
	for _, i := range indexes {
		m, err := l.entries.GetMsg(r.Context(), uint64(i)+1)
		if err != nil {
			l.writeError(w, fmt.Errorf("reading entry %d: %w", i, err))
			return
		}
		out.Entries = append(out.Entries, EntryJSON{Index: i, Entry: m.Data, Signature: m.Header.Get(entry.SignatureHeader)})
	}
	writeJSON(w, out)
}

func (l *Ledger) serveCheckpoint(w http.ResponseWriter, _ *http.Request) {
	cp, _ := l.LatestCheckpoint()
	if cp == nil {
		http.Error(w, "no checkpoint has been signed yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(cp)
}

func (l *Ledger) serveKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, l.verifier.Key())
}

func (l *Ledger) serveInclusion(w http.ResponseWriter, r *http.Request) {
	_, cpSize := l.LatestCheckpoint()
	treeSize := l.tree.Size()
	if !r.URL.Query().Has("index") {
		l.writeError(w, badParam("parameter index: required"))
		return
	}
	index, err := intParam(r, "index", 0)
	if err != nil {
		l.writeError(w, err)
		return
	}
	size, err := intParam(r, "size", cpSize)
	if err != nil {
		l.writeError(w, err)
		return
	}
	switch {
	case size > treeSize:
		l.writeError(w, badParam("parameter size: %d is beyond the ledger size %d", size, treeSize))
		return
	case index >= size:
		l.writeError(w, badParam("parameter index: %d is not below size %d", index, size))
		return
	}
	p, err := l.tree.InclusionProof(index, size)
	if err != nil {
		l.writeError(w, err)
		return
	}
	root, err := l.tree.RootAt(size)
	if err != nil {
		l.writeError(w, err)
		return
	}
	leaf, err := l.tree.LeafHash(index)
	if err != nil {
		l.writeError(w, err)
		return
	}
	writeJSON(w, InclusionJSON{Index: index, Size: size, Root: root, LeafHash: leaf, Proof: p})
}

func (l *Ledger) serveConsistency(w http.ResponseWriter, r *http.Request) {
	_, cpSize := l.LatestCheckpoint()
	treeSize := l.tree.Size()
	if !r.URL.Query().Has("from") {
		l.writeError(w, badParam("parameter from: required"))
		return
	}
	from, err := intParam(r, "from", 0)
	if err != nil {
		l.writeError(w, err)
		return
	}
	to, err := intParam(r, "to", cpSize)
	if err != nil {
		l.writeError(w, err)
		return
	}
	switch {
	case from == 0:
		l.writeError(w, badParam("parameter from: must be at least 1 (every tree is consistent with the empty one)"))
		return
	case to > treeSize:
		l.writeError(w, badParam("parameter to: %d is beyond the ledger size %d", to, treeSize))
		return
	case from > to:
		l.writeError(w, badParam("parameter from: %d is after to %d", from, to))
		return
	}
	p, err := l.tree.ConsistencyProof(from, to)
	if err != nil {
		l.writeError(w, err)
		return
	}
	fromRoot, err := l.tree.RootAt(from)
	if err != nil {
		l.writeError(w, err)
		return
	}
	toRoot, err := l.tree.RootAt(to)
	if err != nil {
		l.writeError(w, err)
		return
	}
	writeJSON(w, ConsistencyJSON{From: from, To: to, FromRoot: fromRoot, ToRoot: toRoot, Proof: p})
}
