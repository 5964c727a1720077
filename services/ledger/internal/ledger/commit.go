package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// errStale means LEDGER holds entries, signed with this ledger's key, that
// this process did not write: it must catch up before recording more.
var errStale = errors.New("LEDGER is ahead of this process")

// commitLoop commits published entries in order until the handler closes
// l.inflight. It returns an ErrTampered error when LEDGER holds a message the
// ledger did not write, and ctx's error when it is told to give up.
func (l *Ledger) commitLoop(ctx context.Context) error {
	prevID := l.committedID
	for p := range l.inflight {
		if err := l.await(ctx, p, prevID); err != nil {
			// The handler stops too: record cancels its context.
			return err
		}
		l.commit(p)
		prevID = p.id
	}
	return nil
}

// await returns once entry p is stored in LEDGER at its position.
func (l *Ledger) await(ctx context.Context, p *pending, prevID string) error {
	if p.fut != nil {
		select {
		case ack := <-p.fut.Ok():
			if ack.Sequence == p.index+1+l.skips {
				return nil
			}
			l.log.Warn("entry acknowledged at an unexpected LEDGER sequence", "entry", p.index, "seq", ack.Sequence)
		case err := <-p.fut.Err():
			// Usually the previous entry failed and this one then had the
			// wrong expected sequence; resolve finds out which.
			l.log.Debug("async publish of entry failed", "entry", p.index, "err", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return l.resolve(ctx, p, prevID)
}

// resolve makes sure entry p ends up stored at LEDGER sequence p.index+1,
// retrying in place (never reordering) with backoff until ctx ends.
func (l *Ledger) resolve(ctx context.Context, p *pending, prevID string) error {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := l.tryResolve(ctx, p, prevID)
		if err == nil || errors.Is(err, ErrTampered) || errors.Is(err, errStale) {
			return err
		}
		if errors.Is(err, nats.ErrConnectionClosed) || ctx.Err() != nil {
			return fmt.Errorf("appending entry %d after %d attempts: %w", p.index, attempt, err)
		}
		l.log.Warn("appending entry failed; retrying", "entry", p.index, "attempt", attempt, "delay", delay, "err", err)
		l.metrics.appendRetries.Inc()
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return fmt.Errorf("appending entry %d after %d attempts: %w", p.index, attempt, ctx.Err())
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// tryResolve looks at the end of LEDGER: if p is already there (its async
// publish was stored although its acknowledgement was lost) it is done; if
// the end is just before p, p is published again. A different entry at p's
// position signed with this ledger's key means another process of this ledger
// wrote it (errStale); anything else is a message the ledger did not write.
func (l *Ledger) tryResolve(ctx context.Context, p *pending, prevID string) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := l.entries.Info(rctx)
	if err != nil {
		return fmt.Errorf("reading LEDGER state: %w", err)
	}
	last := info.State.LastSeq
	// p goes right after LEDGER message want.
	want := p.index + l.skips
	switch {
	case last == want:
		ack, err := l.js.PublishMsg(rctx, l.entryMsg(p), l.expect(p.index, prevID)...)
		if err != nil {
			return fmt.Errorf("publishing entry %d: %w", p.index, err)
		}
		if ack.Sequence != want+1 {
			return fmt.Errorf("%w: entry %d stored at LEDGER sequence %d", ErrTampered, p.index, ack.Sequence)
		}
		return nil
	case last > want:
		m, err := l.entries.GetMsg(rctx, want+1)
		if err != nil {
			return fmt.Errorf("reading LEDGER message %d: %w", want+1, err)
		}
		if bytes.Equal(m.Data, p.data) && m.Header.Get(entry.SignatureHeader) == p.sig {
			return nil
		}
		// Another process of this ledger, or someone publishing on its
		// subject: catchUp tells them apart and skips what is not an
		// entry.
		return fmt.Errorf("%w: LEDGER message %d is not the entry %d this process wrote", errStale, want+1, p.index)
	default:
		return fmt.Errorf("%w: LEDGER ends at sequence %d but entry %d was committed at sequence %d: messages were deleted", ErrTampered, last, p.index-1, want)
	}
}

// commit adds a stored entry to the tree and the indexes.
func (l *Ledger) commit(p *pending) {
	if _, err := l.tree.AppendHash(p.leaf); err != nil {
		// The tree only fails on its own inconsistency.
		panic(fmt.Sprintf("ledger tree: %v", err))
	}
	if p.chainID != "" {
		l.mu.Lock()
		l.chains[p.chainID] = append(l.chains[p.chainID], int64(p.index))
		l.mu.Unlock()
	}
	l.queueChainIndex(p.chainID, int64(p.index), int64(p.index)+1)
	l.committedSeq, l.committedID = p.streamSeq, p.id
	l.metrics.appended.WithLabelValues(string(p.kind)).Inc()
	l.metrics.appendLatency.Observe(time.Since(p.received).Seconds())
	l.metrics.treeSize.Set(float64(p.index + 1))
}
