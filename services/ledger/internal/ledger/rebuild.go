package ledger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// rebuild reads the latest checkpoint and LEDGER and restores the tree, the
// chain and duplicate indexes, the next index and the RAMPART cursor.
//
// Entries covered by the latest checkpoint are vouched for by its signature
// once the rebuilt root matches it, so only the entries after it have their
// signatures checked one by one; this keeps a restart fast on a long log.
func (l *Ledger) rebuild(ctx context.Context) error {
	cpBytes, cp, err := l.latestValidCheckpoint(ctx)
	if err != nil {
		return err
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
		ok, err := l.matches(cp)
		if err != nil {
			return err
		}
		if !ok {
			// A message someone else published with a plausible index may
			// have been taken for an entry the checkpoint vouches for (and
			// the real entry then skipped): read LEDGER again checking
			// every signature.
			l.log.Warn("entries do not match the latest checkpoint; reading LEDGER again with every signature checked", "size", cp.size)
			l.reset()
			if err := l.catchUp(ctx, 0); err != nil {
				return err
			}
			if ok, err = l.matches(cp); err != nil {
				return err
			}
		}
		if size := l.tree.Size(); !ok && cp.size > size {
			return fmt.Errorf("%w: latest checkpoint covers %d entries but LEDGER holds %d", ErrTampered, cp.size, size)
		}
		if !ok {
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

// matches reports whether the rebuilt tree holds the checkpoint's tree.
func (l *Ledger) matches(cp checkpointState) (bool, error) {
	if l.tree.Size() < cp.size {
		return false, nil
	}
	root, err := l.tree.RootAt(cp.size)
	return root == cp.root, err
}

type checkpointState struct {
	size int64
	root tlog.Hash
}

// latestValidCheckpoint returns the last checkpoint in LEDGER_CHECKPOINTS
// that verifies with the ledger's key. Checkpoints after it that do not
// verify were published by someone else; they are logged and reported, and
// ignored.
func (l *Ledger) latestValidCheckpoint(ctx context.Context) ([]byte, checkpointState, error) {
	cpBytes, err := streams.LatestCheckpoint(ctx, l.js)
	if err != nil || cpBytes == nil {
		return nil, checkpointState{}, err
	}
	if c, err := l.verifier.Open(cpBytes); err == nil {
		return cpBytes, checkpointState{size: c.Size, root: c.Root}, nil
	}
	all, err := streams.Checkpoints(ctx, l.js)
	if err != nil {
		return nil, checkpointState{}, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		c, err := l.verifier.Open(all[i])
		if err == nil {
			return all[i], checkpointState{size: c.Size, root: c.Root}, nil
		}
		l.log.Error("LEDGER_CHECKPOINTS holds a checkpoint this ledger did not sign; ignoring it", "position", i, "err", err)
		l.metrics.foreign.Inc()
	}
	return nil, checkpointState{}, nil
}

// reset forgets everything rebuilt from LEDGER, before reading it again.
func (l *Ledger) reset() {
	l.tree = tree.New()
	l.mu.Lock()
	l.chains = map[string][]int64{}
	l.skipped, l.segs = nil, nil
	l.mu.Unlock()
	l.lastMsg.Store(0)
	l.dedup = map[string]uint64{}
	l.foreign = nil
	l.committedSeq, l.committedID = 0, ""
	l.idxMu.Lock()
	l.idxQueue = nil
	l.idxMu.Unlock()
}

// catchUp reads the LEDGER messages after the last one committed or skipped
// and adds their entries to the tree and the indexes; the handler and
// committer continue from the last of them. Signed entries (the format
// before bundles) at or beyond trustedSize (the size of a checkpoint that
// is compared with the tree afterwards) have their signatures checked;
// bundles always have their MAC checked (classify).
func (l *Ledger) catchUp(ctx context.Context, trustedSize int64) error {
	from := l.lastMsg.Load() + 1
	_, err := streams.Read(ctx, l.js, streams.EntriesStream, from, func(seq uint64, msg jetstream.Msg) error {
		idx := l.tree.Size()
		m, err := bundle.Read(msg.Headers(), msg.Data())
		if want := l.lastMsg.Load() + 1; seq != want {
			return missingEntries(want, seq, idx, firstIndex(m, err))
		}
		if err != nil {
			l.skip(seq, msg, err.Error())
			return nil
		}
		checkSig := idx >= trustedSize
		es, why := l.classify(idx, m, checkSig)
		if why != "" {
			l.skip(seq, msg, why)
			return nil
		}
		prev := l.committedSeq
		for _, e := range es {
			if (idx > 0 || e != es[0]) && e.StreamSeq <= prev {
				if !checkSig {
					// Taken on the checkpoint's word, not checked on its
					// own: an entry taken before it may be a forged one the
					// checkpoint does not vouch for. The root comparison
					// after the rebuild settles it, reading again with
					// every signature checked.
					l.skip(seq, msg, fmt.Sprintf("it records RAMPART sequence %d after %d", e.StreamSeq, prev))
					return nil
				}
				return fmt.Errorf("%w: entry %d, written with the ledger's key, records RAMPART sequence %d after %d", ErrTampered, e.Index, e.StreamSeq, prev)
			}
			prev = e.StreamSeq
		}
		l.addSegment(idx, seq)
		l.lastMsg.Store(seq)
		for i, e := range es {
			leaf := tlog.RecordHash(m.Entries[i])
			if _, err := l.tree.AppendHash(leaf); err != nil {
				return err
			}
			at := idx + int64(i) // trusted only at that index (trust.entries)
			if e.Kind == entry.KindEvent {
				l.dedup[e.Source+"\x00"+e.EventID] = e.Index
			}
			if e.ChainID != "" {
				l.mu.Lock()
				l.chains[e.ChainID] = append(l.chains[e.ChainID], at)
				l.mu.Unlock()
			}
			l.queueChainIndex(e.ChainID, at, at+1)
		}
		l.committedSeq, l.committedID = prev, msg.Headers().Get(jetstream.MsgIDHeader)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s from message %d: %w", streams.EntriesStream, from, err)
	}
	size := l.tree.Size()
	l.next = entry.IndexOf(size)
	l.published.Store(size)
	l.lastSeq, l.prevID = l.committedSeq, l.committedID
	l.pubSeq = l.lastMsg.Load()
	l.metrics.treeSize.Set(float64(size))
	return nil
}
