package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// checkpointLoop signs a checkpoint at most once per interval, when the tree
// has grown since the last one, until ctx ends. While nothing is in flight it
// also looks at the end of LEDGER: a message there that this process did not
// publish (someone else's, on the ledger's subject) stops the recording with
// errStale, so that it is skipped and reported without waiting for the next
// append.
func (l *Ledger) checkpointLoop(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.signCheckpoint(ctx); err != nil && ctx.Err() == nil {
				// The next tick tries again with the then-current tree.
				l.log.Warn("signing checkpoint", "err", err)
			}
			if err := l.checkTail(ctx); err != nil {
				stop(err)
				return
			}
		}
	}
}

// checkTail returns errStale when LEDGER ends after the committed entries
// although every entry this process published is committed.
func (l *Ledger) checkTail(ctx context.Context) error {
	size := l.tree.Size()
	if l.published.Load() > size {
		return nil
	}
	info, err := l.entries.Info(ctx)
	if err != nil {
		return nil // the next tick looks again
	}
	if end := l.lastMsg.Load(); info.State.LastSeq > end && l.published.Load() <= size {
		return fmt.Errorf("%w: LEDGER ends at message %d after entry %d at message %d, with nothing in flight", errStale, info.State.LastSeq, size-1, end)
	}
	return nil
}

// signCheckpoint signs the committed tree and stores the checkpoint in
// LEDGER_CHECKPOINTS, unless no entry was committed since the last one.
func (l *Ledger) signCheckpoint(ctx context.Context) error {
	size, root, err := l.tree.Root()
	if err != nil {
		return err
	}
	l.mu.RLock()
	last := l.cpSize
	l.mu.RUnlock()
	if size == 0 || size == last {
		return nil
	}
	signed, err := l.signer.Sign(checkpoint.Checkpoint{Origin: l.signer.Name(), Size: size, Root: root})
	if err != nil {
		return err
	}
	if _, err := l.js.Publish(ctx, streams.CheckpointsSubject, signed); err != nil {
		return fmt.Errorf("storing checkpoint at size %d: %w", size, err)
	}
	// After LEDGER_CHECKPOINTS: a witness never holds a checkpoint that
	// the ledger's own stream lacks.
	l.witnessCheckpoint(signed)
	l.mu.Lock()
	l.latestCP, l.cpSize = signed, size
	l.mu.Unlock()
	l.metrics.checkpoints.Inc()
	l.metrics.checkpointSize.Set(float64(size))
	if hook := l.signedHook.Load(); hook != nil {
		(*hook)(size)
	}
	return nil
}
