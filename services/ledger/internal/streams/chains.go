package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// The chain index lets a reader find the entries of one release chain
// without reading the whole LEDGER stream. The ledger service writes it to
// the LEDGER_CHAINS stream (no deletes, no purges):
//
//   - on ChainSubject(chainID), messages whose data are the indexes of
//     entries of that chain, in decimal, comma-separated and ascending;
//   - on ChainsMarkSubject, a size N in decimal, published only once every
//     entry below index N that has a chain id is in the index.
//
// The index is a convenience and is not trusted: Chain reads each entry from
// LEDGER and keeps only those that really name the chain, and
// verification reads LEDGER itself.

// ChainIDHeader names the chain on an index message, for people reading the
// stream; the subject token may have lost characters.
const ChainIDHeader = "Rampart-Chain-Id"

// ChainSubject is the index subject of a chain: "ledger.chain." followed by
// the chain id with the characters NATS reserves ('.', '*', '>', white space
// and control characters) replaced by '_'. Different ids can share a
// subject; readers filter by the entries' own chain id.
func ChainSubject(chainID string) string {
	return "ledger.chain." + strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, chainID)
}

// FormatIndexes is the data of a chain index message.
func FormatIndexes(indexes []int64) []byte {
	var b []byte
	for i, x := range indexes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return b
}

// parseIndexes reads the data of a chain index message.
func parseIndexes(data []byte) ([]int64, error) {
	var out []int64
	for f := range strings.SplitSeq(string(data), ",") {
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil || x < 0 {
			return nil, fmt.Errorf("chain index entry %q is not an entry index", f)
		}
		out = append(out, x)
	}
	return out, nil
}

// Chain returns the entries whose chainId is chainID, in ledger order. It does
// not verify signatures; run Verify for that.
//
// With the chain index it reads the index mark, the chain's index messages,
// those entries by sequence, and the LEDGER entries past the mark (the ones
// committed since the index was last brought up to date, about one checkpoint
// interval's worth). Without the index stream (a ledger from before it
// existed) it reads the whole LEDGER stream.
func Chain(ctx context.Context, js jetstream.JetStream, chainID string) ([]*entry.Entry, error) {
	idx, err := js.Stream(ctx, ChainsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return scanChain(ctx, js, chainID, 1)
	}
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", ChainsStream, err)
	}
	// The mark first: every index message for entries below it was stored
	// before it, so the reads below see them.
	mark, err := indexMark(ctx, idx)
	if err != nil {
		return nil, err
	}
	var indexes []int64
	subject := ChainSubject(chainID)
	for seq := uint64(1); ; {
		m, err := idx.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s on %s: %w", ChainsStream, subject, err)
		}
		xs, err := parseIndexes(m.Data)
		if err != nil {
			return nil, fmt.Errorf("%s message %d: %w", ChainsStream, m.Sequence, err)
		}
		for _, x := range xs {
			if x < mark {
				indexes = append(indexes, x)
			}
		}
		seq = m.Sequence + 1
	}
	// A retried index publish can repeat indexes.
	slices.Sort(indexes)
	indexes = slices.Compact(indexes)

	entries, err := js.Stream(ctx, EntriesStream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", EntriesStream, err)
	}
	info, err := entries.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s info: %w", EntriesStream, err)
	}
	last := info.State.LastSeq
	var out []*entry.Entry
	var cur located
	lo := uint64(1)
	for _, x := range indexes {
		if !cur.holds(x) {
			if cur, err = locate(ctx, entries, x, lo, last); err != nil {
				return nil, fmt.Errorf("reading entry %d from %s: %w", x, EntriesStream, err)
			}
			lo = cur.seq
		}
		if !cur.holds(x) {
			continue // the index is not trusted; the entry is not there
		}
		e, err := entry.Unmarshal(cur.msg.Entries[x-cur.msg.firstIndex])
		if err != nil {
			return nil, fmt.Errorf("LEDGER message %d: %w", cur.seq, err)
		}
		if pos, ok := entry.Position(e.Index); ok && e.ChainID == chainID && pos == x {
			out = append(out, e)
		}
	}
	// The entries past the mark: from the message that holds entry mark.
	from := lo
	if last > 0 {
		at, err := locate(ctx, entries, mark, lo, last)
		if err != nil {
			return nil, err
		}
		if at.msg.Entries != nil {
			from = at.seq
		}
	}
	rest, err := scanChain(ctx, js, chainID, from)
	if err != nil {
		return nil, err
	}
	for _, e := range rest {
		if pos, ok := entry.Position(e.Index); ok && pos >= mark {
			out = append(out, e)
		}
	}
	return out, nil
}

// located is a LEDGER message read by locate.
type located struct {
	seq uint64
	msg indexedMessage
}

// indexedMessage is a LEDGER message with the index of its first entry.
type indexedMessage struct {
	bundle.Message
	firstIndex int64
}

func (l located) holds(x int64) bool {
	return l.msg.Entries != nil && x >= l.msg.firstIndex && x < l.msg.firstIndex+int64(len(l.msg.Entries))
}

// readIndexed reads LEDGER message seq and the index of its first entry; ok
// is false for a message that holds no entry (someone else's).
func readIndexed(ctx context.Context, s jetstream.Stream, seq uint64) (indexedMessage, bool, error) {
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return indexedMessage{}, false, nil
	}
	if err != nil {
		return indexedMessage{}, false, err
	}
	m, err := bundle.Read(raw.Header, raw.Data)
	if err != nil {
		return indexedMessage{}, false, nil
	}
	if m.First >= 0 {
		return indexedMessage{Message: m, firstIndex: m.First}, true, nil
	}
	e, err := entry.Unmarshal(m.Entries[0])
	if err != nil {
		return indexedMessage{}, false, nil
	}
	first, ok := entry.Position(e.Index)
	if !ok {
		return indexedMessage{}, false, nil
	}
	return indexedMessage{Message: m, firstIndex: first}, true, nil
}

// locate finds, among LEDGER messages lo..hi, the last one whose first entry
// is at most x, by bisection over the index each message states (messages
// hold ascending indexes; one that holds no entry is stepped over). The
// result holds no entry when none qualifies.
func locate(ctx context.Context, s jetstream.Stream, x int64, lo, hi uint64) (located, error) {
	var best located
	for lo <= hi {
		mid := lo + (hi-lo)/2
		seq := mid
		var m indexedMessage
		for ; seq <= hi; seq++ {
			var ok bool
			var err error
			if m, ok, err = readIndexed(ctx, s, seq); err != nil {
				return located{}, err
			} else if ok {
				break
			}
		}
		switch {
		case seq > hi:
			hi = mid - 1
			if mid == 0 {
				return best, nil
			}
		case m.firstIndex <= x:
			best = located{seq: seq, msg: m}
			lo = seq + 1
		default:
			if mid == 0 {
				return best, nil
			}
			hi = mid - 1
		}
	}
	return best, nil
}

// indexMark returns the size up to which the chain index is complete, 0
// when no mark was published yet.
func indexMark(ctx context.Context, idx jetstream.Stream) (int64, error) {
	m, err := idx.GetLastMsgForSubject(ctx, ChainsMarkSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the %s mark: %w", ChainsStream, err)
	}
	n, err := strconv.ParseInt(string(m.Data), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s mark %q is not a size", ChainsStream, m.Data)
	}
	return n, nil
}

// IndexMark returns the size up to which the chain index is complete: 0 when
// the index stream or its mark does not exist yet.
func IndexMark(ctx context.Context, js jetstream.JetStream) (int64, error) {
	idx, err := js.Stream(ctx, ChainsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", ChainsStream, err)
	}
	return indexMark(ctx, idx)
}
