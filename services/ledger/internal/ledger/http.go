package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// Handler serves the ledger's query API under /ledger/ (the wire types are
// in pkg/ledger/client):
//
//	GET /ledger/entries?from=&to=&limit=      entries from index `from` (default 0) up to, not including, `to`
//	GET /ledger/chains/{chain}?from=&limit=   the entries of one release chain (CDEvents chainId) in ledger
//	                                          order, from entry index `from`; 404 for a chain with no entry
//	GET /ledger/checkpoint                    the latest signed checkpoint (note text); 404 before the first
//	GET /ledger/checkpoints?from=&to=&limit=  signed checkpoints in signing order, by position
//	GET /ledger/proof/inclusion?index=&size=  inclusion proof of an entry in the tree of size `size`
//	GET /ledger/proof/consistency?from=&to=   consistency proof between two tree sizes
//	GET /ledger/key                           the verifier key
//	GET /ledger/tlog/...                      the log as C2SP tlog-tiles (tiles.go)
//
// `size` and `to` of the proofs default to the latest checkpoint's size, so
// proofs match a signed root unless a caller asks otherwise. Parameters that
// are not integers, out of range, or unknown combinations are answered 400
// with the reason; while the ledger rebuilds its state, or after it stopped
// recording, every request is answered 503.
func (l *Ledger) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ledger/entries", l.serveEntries)
	mux.HandleFunc("GET /ledger/chains/{chain}", l.serveChain)
	mux.HandleFunc("GET /ledger/checkpoint", l.serveCheckpoint)
	mux.HandleFunc("GET /ledger/checkpoints", l.serveCheckpoints)
	mux.HandleFunc("GET /ledger/proof/inclusion", l.serveInclusion)
	mux.HandleFunc("GET /ledger/proof/consistency", l.serveConsistency)
	mux.HandleFunc("GET /ledger/key", l.serveKey)
	mux.HandleFunc("GET "+TilesPrefix+"checkpoint", l.serveCheckpoint)
	mux.HandleFunc("GET "+TilesPrefix+"tile/", l.serveTile)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Before the rebuild the tree is partial; after Run stopped on a
		// tampered stream it describes a prefix the ledger no longer
		// stands behind.
		if !l.Ready() {
			msg := "the ledger is not recording (rebuilding its state, or stopped)"
			if why := l.StoppedReason(); why != "" {
				msg = "the ledger is not recording: it stopped: " + why
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// maxChainID bounds a chain id in a request; event attributes are far
// shorter in practice.
const maxChainID = 1024

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

// limitParam reads the page size, at most the configured PageSize.
func (l *Ledger) limitParam(r *http.Request) (int64, error) {
	limit, err := intParam(r, "limit", int64(l.opts.PageSize))
	if err != nil {
		return 0, err
	}
	if limit == 0 || limit > int64(l.opts.PageSize) {
		return 0, badParam("parameter limit: must be between 1 and %d", l.opts.PageSize)
	}
	return limit, nil
}

// pageParams reads `from`, `to` (default size) and `limit` of a paged range
// over [0, size]: this page is [from, end), and end < to means another
// follows.
func (l *Ledger) pageParams(r *http.Request, size int64, what string) (from, end, to int64, err error) {
	if from, err = intParam(r, "from", 0); err != nil {
		return 0, 0, 0, err
	}
	if to, err = intParam(r, "to", size); err != nil {
		return 0, 0, 0, err
	}
	switch {
	case to > size:
		return 0, 0, 0, badParam("parameter to: %d is beyond the %s %d", to, what, size)
	case from > to:
		return 0, 0, 0, badParam("parameter from: %d is after to %d", from, to)
	}
	limit, err := l.limitParam(r)
	if err != nil {
		return 0, 0, 0, err
	}
	return from, min(to, from+limit), to, nil
}

func (l *Ledger) serveEntries(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("chainId") {
		l.writeError(w, badParam("parameter chainId: not supported; GET /ledger/chains/{chain} lists a chain's entries"))
		return
	}
	size := l.tree.Size()
	from, end, to, err := l.pageParams(r, size, "ledger size")
	if err != nil {
		l.writeError(w, err)
		return
	}
	var next *int64
	if end < to {
		next = &end
	}
	if end-from >= minStreamedPage {
		if out, ok := l.readRange(r, from, end); ok {
			writeJSON(w, client.Entries{Size: size, Entries: out, Next: next})
			return
		}
	}
	var indexes []int64
	for i := from; i < end; i++ {
		indexes = append(indexes, i)
	}
	l.writeEntries(w, r, size, indexes, next)
}

// minStreamedPage is the page from which reading the range with one
// ordered consumer beats a direct get per entry (about 1 ms to create the
// consumer against some 50 µs per get on a small machine). A variable so
// that tests can read small ledgers in one pass too.
var minStreamedPage int64 = 32

// readRangeTimeout bounds the one-pass read of a page: should LEDGER not
// hold the message a page ends at (the stream and the ledger's count of its
// own messages disagree, as after a lost node), the ordered consumer would
// wait for it; the page is then read entry by entry, which names what is
// missing.
const readRangeTimeout = 3 * time.Second

// readRange reads entries [from, end) from LEDGER in one pass, skipping the
// messages that are not entries. It returns false when LEDGER does not hold
// every one of them (deleted messages); writeEntries then names the first
// missing one.
func (l *Ledger) readRange(r *http.Request, from, end int64) ([]client.Entry, bool) {
	l.mu.RLock()
	segs := l.segs
	l.mu.RUnlock()
	k := segmentOf(segs, from)
	last := segmentOf(segs, end-1)
	if k < 0 || last < 0 {
		return nil, false
	}
	out := make([]client.Entry, 0, end-from)
	ctx, cancel := context.WithTimeout(r.Context(), readRangeTimeout)
	defer cancel()
	_, err := streams.ReadTo(ctx, l.js, streams.EntriesStream, segs[k].seq, segs[last].seq, func(seq uint64, msg jetstream.Msg) error {
		switch {
		case k > last:
			return nil
		case seq < segs[k].seq:
			return nil // not an entry (skipped)
		case seq > segs[k].seq:
			return fmt.Errorf("LEDGER message %d where entries from %d (message %d) were expected", seq, segs[k].first, segs[k].seq)
		}
		m, err := bundle.Read(msg.Headers(), msg.Data())
		if err != nil {
			return fmt.Errorf("LEDGER message %d: %w", seq, err)
		}
		out = appendEntries(out, m, segs[k].first, from, end)
		k++
		return nil
	})
	if err != nil || int64(len(out)) != end-from {
		if err != nil && r.Context().Err() == nil {
			l.log.Debug("ledger API: reading a page of entries in one pass; reading them one by one", "from", from, "to", end, "err", err)
		}
		return nil, false
	}
	return out, true
}

// appendEntries appends the entries of LEDGER message m, whose first entry
// is at index first, that lie in [from, end), in the API's form.
func appendEntries(out []client.Entry, m bundle.Message, first, from, end int64) []client.Entry {
	for k, data := range m.Entries {
		i := first + int64(k)
		if i < from || i >= end {
			continue
		}
		e := client.Entry{Index: i, Entry: data}
		if m.First < 0 {
			e.Signature = m.Signature
		} else {
			leaf := m.Leaves[k]
			e.Leaf = &leaf
		}
		out = append(out, e)
	}
	return out
}

func (l *Ledger) serveChain(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("chain")
	switch {
	case len(id) > maxChainID:
		l.writeError(w, badParam("chain id: longer than %d bytes", maxChainID))
		return
	case !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl):
		l.writeError(w, badParam("chain id %q: not printable UTF-8", id))
		return
	}
	from, err := intParam(r, "from", 0)
	if err != nil {
		l.writeError(w, err)
		return
	}
	limit, err := l.limitParam(r)
	if err != nil {
		l.writeError(w, err)
		return
	}
	size := l.tree.Size()
	l.mu.RLock()
	chain := l.chains[id]
	l.mu.RUnlock()
	if len(chain) == 0 {
		http.Error(w, fmt.Sprintf("no ledger entry has chainId %q", id), http.StatusNotFound)
		return
	}
	// chain is append-only and sorted; copy the page out of it.
	i, _ := slices.BinarySearch(chain, from)
	end := min(i+int(limit), len(chain))
	indexes := slices.Clone(chain[i:end])
	var next *int64
	if end < len(chain) {
		n := chain[end]
		next = &n
	}
	l.writeEntries(w, r, size, indexes, next)
}

// writeEntries answers with the entries at indexes, read from LEDGER.
func (l *Ledger) writeEntries(w http.ResponseWriter, r *http.Request, size int64, indexes []int64, next *int64) {
	out := client.Entries{Size: size, Entries: make([]client.Entry, 0, len(indexes)), Next: next}
	var rd messageReader
	for _, i := range indexes {
		m, first, seq, err := rd.read(r.Context(), l, i)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			l.writeMissing(w, r, i, seq)
			return
		}
		if err != nil {
			l.writeError(w, fmt.Errorf("reading entry %d: %w", i, err))
			return
		}
		out.Entries = appendEntries(out.Entries, m, first, i, i+1)
	}
	writeJSON(w, out)
}

// messageReader reads the LEDGER message holding an entry, keeping the last
// one read for the entries after it.
type messageReader struct {
	seq   uint64
	first int64
	m     bundle.Message
}

// read returns the message holding committed entry i, the index of its
// first entry and its sequence.
func (rd *messageReader) read(ctx context.Context, l *Ledger, i int64) (bundle.Message, int64, uint64, error) {
	seq, first := l.entrySeq(i)
	if seq == rd.seq && seq != 0 {
		return rd.m, rd.first, seq, nil
	}
	raw, err := l.entries.GetMsg(ctx, seq)
	if err != nil {
		return bundle.Message{}, 0, seq, err
	}
	m, err := bundle.Read(raw.Header, raw.Data)
	if err != nil {
		return bundle.Message{}, 0, seq, fmt.Errorf("LEDGER message %d: %w", seq, err)
	}
	if i-first >= int64(len(m.Entries)) {
		return bundle.Message{}, 0, seq, fmt.Errorf("LEDGER message %d holds %d entries from %d, not entry %d", seq, len(m.Entries), first, i)
	}
	*rd = messageReader{seq: seq, first: first, m: m}
	return m, first, seq, nil
}

// writeMissing answers for entry i, committed at LEDGER sequence seq, which
// the stream no longer has: someone deleted it, or set a limit on the stream
// that dropped it.
func (l *Ledger) writeMissing(w http.ResponseWriter, r *http.Request, i int64, seq uint64) {
	msg := fmt.Sprintf("entry %d (LEDGER message %d) is missing from LEDGER: it was deleted", i, seq)
	if info, err := l.entries.Info(r.Context()); err == nil && info.State.FirstSeq > seq {
		first := info.State.FirstSeq
		msg = fmt.Sprintf("the first %s LEDGER messages are missing (the stream now starts at message %s): "+
			"they were deleted or dropped by a limit set on the stream", verify.Count(countOf(first-1)), verify.Count(countOf(first)))
		l.mu.RLock()
		skips := len(l.skipped)
		// The entries missing are those before the first message left.
		k := sort.Search(len(l.segs), func(k int) bool { return l.segs[k].seq >= first })
		missing := l.tree.Size()
		if k < len(l.segs) {
			missing = l.segs[k].first
		}
		l.mu.RUnlock()
		if skips == 0 {
			msg = fmt.Sprintf("the first %s entries are missing from LEDGER (the stream now starts at message %s): "+
				"they were deleted or dropped by a limit set on the stream", verify.Count(missing), verify.Count(countOf(first)))
		}
	}
	l.log.Error("ledger API: entries are missing", "entry", i, "seq", seq, "err", msg)
	http.Error(w, msg, http.StatusInternalServerError)
}

func (l *Ledger) serveCheckpoints(w http.ResponseWriter, r *http.Request) {
	info, err := l.cps.Info(r.Context())
	if err != nil {
		l.writeError(w, fmt.Errorf("reading the checkpoint count: %w", err))
		return
	}
	// LEDGER_CHECKPOINTS denies deletes: its sequences are 1..LastSeq.
	n := countOf(info.State.LastSeq)
	from, end, to, err := l.pageParams(r, n, "checkpoint count")
	if err != nil {
		l.writeError(w, err)
		return
	}
	out := client.Checkpoints{Count: n, Checkpoints: make([]string, 0, end-from)}
	for i := from; i < end; i++ {
		m, err := l.cps.GetMsg(r.Context(), seqOf(i)+1)
		if err != nil {
			l.writeError(w, fmt.Errorf("reading checkpoint %d: %w", i, err))
			return
		}
		out.Checkpoints = append(out.Checkpoints, string(m.Data))
	}
	if end < to {
		out.Next = &end
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
	writeJSON(w, client.Inclusion{Index: index, Size: size, Root: root, LeafHash: leaf, Proof: p})
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
	writeJSON(w, client.Consistency{From: from, To: to, FromRoot: fromRoot, ToRoot: toRoot, Proof: p})
}
