package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// errStale means LEDGER holds entries, signed with this ledger's key, that
// this process did not write: it must catch up before recording more.
var errStale = errors.New("LEDGER is ahead of this process")

// commitLoop commits published bundles in order until the publisher closes
// l.inflight. It returns an ErrTampered error when LEDGER holds a message the
// ledger did not write, and ctx's error when it is told to give up.
func (l *Ledger) commitLoop(ctx context.Context) error {
	for b := range l.inflight {
		if err := l.await(ctx, b); err != nil {
			// The handler stops too: record cancels its context.
			return err
		}
		l.commit(b)
	}
	return nil
}

// await returns once bundle b is stored in LEDGER at its position.
func (l *Ledger) await(ctx context.Context, b *bundleMsg) error {
	if b.fut != nil {
		select {
		case ack := <-b.fut.Ok():
			if ack.Sequence == b.seq {
				return nil
			}
			l.log.Warn("bundle acknowledged at an unexpected LEDGER sequence", "first", b.first, "seq", ack.Sequence, "want", b.seq)
		case err := <-b.fut.Err():
			// Usually the previous bundle failed and this one then had
			// the wrong expected sequence; resolve finds out which.
			l.log.Debug("async publish of a bundle failed", "first", b.first, "err", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return l.resolve(ctx, b)
}

// resolve makes sure bundle b ends up stored at LEDGER sequence b.seq,
// retrying in place (never reordering) with backoff until ctx ends.
func (l *Ledger) resolve(ctx context.Context, b *bundleMsg) error {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := l.tryResolve(ctx, b)
		if err == nil || errors.Is(err, ErrTampered) || errors.Is(err, errStale) {
			return err
		}
		if errors.Is(err, nats.ErrConnectionClosed) || ctx.Err() != nil {
			return fmt.Errorf("appending entries from %d after %d attempts: %w", b.first, attempt, err)
		}
		l.log.Warn("appending entries failed; retrying", "first", b.first, "attempt", attempt, "delay", delay, "err", err)
		l.metrics.appendRetries.Inc()
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("appending entries from %d after %d attempts: %w", b.first, attempt, ctx.Err())
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// tryResolve looks at the end of LEDGER: if b is already there (its async
// publish was stored although its acknowledgement was lost) it is done; if
// the end is just before b, b is published again. A different message at
// b's position means another process of this ledger wrote it, or someone
// else did: errStale, and catchUp tells them apart.
func (l *Ledger) tryResolve(ctx context.Context, b *bundleMsg) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := l.entries.Info(rctx)
	if err != nil {
		return fmt.Errorf("reading LEDGER state: %w", err)
	}
	last := info.State.LastSeq
	// b goes right after LEDGER message want.
	want := b.seq - 1
	switch {
	case last == want:
		ack, err := l.js.PublishMsg(rctx, b.msg, l.expect(want, b.prevID)...)
		if err != nil {
			return fmt.Errorf("publishing entries from %d: %w", b.first, err)
		}
		if ack.Sequence != b.seq {
			return fmt.Errorf("%w: entries from %d stored at LEDGER sequence %d", ErrTampered, b.first, ack.Sequence)
		}
		return nil
	case last > want:
		m, err := l.entries.GetMsg(rctx, b.seq)
		if err != nil {
			return fmt.Errorf("reading LEDGER message %d: %w", b.seq, err)
		}
		if bytes.Equal(m.Data, b.msg.Data) && m.Header.Get(jetstream.MsgIDHeader) == b.id &&
			m.Header.Get(bundle.MACHeader) == b.msg.Header.Get(bundle.MACHeader) &&
			m.Header.Get(entry.SignatureHeader) == b.msg.Header.Get(entry.SignatureHeader) {
			return nil
		}
		return fmt.Errorf("%w: LEDGER message %d is not the one holding entries from %d this process wrote", errStale, b.seq, b.first)
	default:
		return fmt.Errorf("%w: LEDGER ends at sequence %d but the message before entry %d was committed at sequence %d: messages were deleted", ErrTampered, last, b.first, want)
	}
}

// commit adds the entries of a stored bundle to the tree and the indexes,
// and acknowledges their RAMPART messages: one acknowledgement, of the last
// one delivered, covers the bundle (the consumer acknowledges all before it).
func (l *Ledger) commit(b *bundleMsg) {
	// The message before the tree grows: the query API finds every entry
	// below the tree's size, and checkTail never sees a tree ahead of the
	// end of LEDGER it knows.
	l.addSegment(position(b.first), b.seq)
	l.lastMsg.Store(b.seq)
	var ack jetstream.Msg
	for _, p := range b.ps {
		if _, err := l.tree.AppendHash(p.leaf); err != nil {
			// The tree only fails on its own inconsistency.
			panic(fmt.Sprintf("ledger tree: %v", err))
		}
		at := position(p.index)
		if p.chainID != "" {
			l.mu.Lock()
			l.chains[p.chainID] = append(l.chains[p.chainID], at)
			l.mu.Unlock()
		}
		l.queueChainIndex(p.chainID, at, at+1)
		l.metrics.appended.WithLabelValues(string(p.kind)).Inc()
		l.metrics.appendLatency.Observe(time.Since(p.received).Seconds())
		if p.ack != nil {
			ack = p.ack
		}
	}
	last := b.ps[len(b.ps)-1]
	l.committedSeq, l.committedID = last.streamSeq, b.id
	l.metrics.treeSize.Set(float64(last.index + 1))
	l.bundlesInFlight.Add(-1)
	select {
	case l.committedBundle <- struct{}{}:
	default:
	}
	if ack != nil {
		if err := ack.Ack(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			// Only flow control: the next bundle acknowledges it too.
			l.log.Debug("acknowledging RAMPART messages", "err", err)
		}
	}
}
