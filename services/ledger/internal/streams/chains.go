package streams

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

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
	var out []*entry.Entry
	for _, x := range indexes {
		m, err := entries.GetMsg(ctx, uint64(x)+1)
		if err != nil {
			return nil, fmt.Errorf("reading entry %d from %s: %w", x, EntriesStream, err)
		}
		e, err := entry.Unmarshal(m.Data)
		if err != nil {
			return nil, fmt.Errorf("LEDGER message %d: %w", m.Sequence, err)
		}
		if e.ChainID == chainID && e.Index == uint64(x) {
			out = append(out, e)
		}
	}
	rest, err := scanChain(ctx, js, chainID, uint64(mark)+1)
	if err != nil {
		return nil, err
	}
	return append(out, rest...), nil
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
