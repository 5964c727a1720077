package ledger

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// rebuild reads the latest checkpoint and LEDGER and restores the tree, the
// chain and duplicate indexes, the next index and the RAMPART cursor.
//
// Entries covered by the latest checkpoint are vouched for by its signature
// once the rebuilt root matches it, so only the entries after it have their
// signatures checked one by one; this keeps a restart fast on a long log.
func (l *Ledger) rebuild(ctx context.Context) error {
	cpBytes, err := streams.LatestCheckpoint(ctx, l.js)
	if err != nil {
		return err
	}
	var cp checkpointState
	if cpBytes != nil {
		c, err := l.verifier.Open(cpBytes)
		if err != nil {
			return fmt.Errorf("%w: latest checkpoint: %w", ErrTampered, err)
		}
		cp = checkpointState{size: c.Size, root: c.Root}
	}
	// Entries below the chain index mark were indexed by an earlier
	// process; catchUp queues the ones after it.
	mark, err := streams.IndexMark(ctx, l.js)
	if err != nil {
		l.log.Warn("reading the chain index mark; indexing every chain again", "err", err)
		mark = 0
	}
	l.idxMu.Lock()
	l.idxFrom, l.idxMarked = mark, mark
	l.idxMu.Unlock()
	if err := l.catchUp(ctx, cp.size); err != nil {
		return err
	}
	if cpBytes != nil {
		if size := l.tree.Size(); cp.size > size {
			return fmt.Errorf("%w: latest checkpoint covers %d entries but LEDGER holds %d", ErrTampered, cp.size, size)
		}
		root, err := l.tree.RootAt(cp.size)
		if err != nil {
			return err
		}
		if root != cp.root {
			// Name the first bad entry: the query API, and so `rampart
			// ledger verify`, is not served on top of tampered storage.
			_, verr := streams.Verify(ctx, l.js, l.verifier)
			return fmt.Errorf("%w: entries 0..%d do not match the latest checkpoint; verifying the streams: %v", ErrTampered, cp.size-1, verr)
		}
	}
	l.mu.Lock()
	l.latestCP, l.cpSize = cpBytes, cp.size
	l.mu.Unlock()
	l.metrics.checkpointSize.Set(float64(cp.size))
	return nil
}

type checkpointState struct {
	size int64
	root tlog.Hash
}

// catchUp reads the LEDGER entries after the committed ones and adds them to
// the tree and the indexes; the handler and committer continue from the last
// of them. Entries at or beyond trustedSize (the size of a checkpoint that is
// compared with the tree afterwards) have their signatures checked.
func (l *Ledger) catchUp(ctx context.Context, trustedSize int64) error {
	from := uint64(l.tree.Size()) + 1
	_, err := streams.Read(ctx, l.js, streams.EntriesStream, from, func(seq uint64, msg jetstream.Msg) error {
		idx := l.tree.Size()
		if seq != uint64(idx)+1 {
			return fmt.Errorf("%w: LEDGER message %d where entry %d (message %d) was expected", ErrTampered, seq, idx, idx+1)
		}
		data := msg.Data()
		if idx >= trustedSize {
			if err := l.verifier.CheckEntry(data, msg.Headers().Get(entry.SignatureHeader)); err != nil {
				return fmt.Errorf("%w: entry %d: %w", ErrTampered, idx, err)
			}
		}
		e, err := entry.Unmarshal(data)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %w", ErrTampered, idx, err)
		}
		if e.Index != uint64(idx) {
			return fmt.Errorf("%w: entry %d says index %d", ErrTampered, idx, e.Index)
		}
		if idx > 0 && e.StreamSeq <= l.committedSeq {
			return fmt.Errorf("%w: entry %d records RAMPART sequence %d after %d", ErrTampered, idx, e.StreamSeq, l.committedSeq)
		}
		leaf := tlog.RecordHash(data)
		if _, err := l.tree.AppendHash(leaf); err != nil {
			return err
		}
		if e.Kind == entry.KindEvent {
			l.dedup[e.Source+"\x00"+e.EventID] = e.Index
		}
		if e.ChainID != "" {
			l.mu.Lock()
			l.chains[e.ChainID] = append(l.chains[e.ChainID], idx)
			l.mu.Unlock()
		}
		l.queueChainIndex(e.ChainID, idx, idx+1)
		l.committedSeq, l.committedID = e.StreamSeq, hex.EncodeToString(leaf[:])
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s from message %d: %w", streams.EntriesStream, from, err)
	}
	size := l.tree.Size()
	l.next = uint64(size)
	l.lastSeq, l.prevID = l.committedSeq, l.committedID
	l.metrics.treeSize.Set(float64(size))
	return nil
}
