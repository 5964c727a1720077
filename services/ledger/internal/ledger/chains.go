package ledger

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// The chain index (see streams/chains.go for its format) lets readers
// such as the notifier find one chain's entries without reading all of
// LEDGER. The committer queues each committed entry that has a chain id;
// indexLoop publishes the queue, one message per chain, and then the mark:
// the committed size at the moment the queue was taken. The index is
// written after the entries and is not part of what the ledger guarantees:
// if publishing it fails, the queue is kept and retried, and readers scan
// LEDGER past the mark meanwhile.

// maxIndexesPerMsg keeps index messages far below the default 1 MB payload
// limit, e.g. when a ledger from before the index queues all its chains.
const maxIndexesPerMsg = 10_000

// chainRef is one committed entry to index.
type chainRef struct {
	chainID string
	index   int64
}

// queueChainIndex records that entry index of chainID is committed and the
// tree now has size entries. It is called in index order.
func (l *Ledger) queueChainIndex(chainID string, index, size int64) {
	l.idxMu.Lock()
	defer l.idxMu.Unlock()
	if chainID != "" && index >= l.idxFrom {
		l.idxQueue = append(l.idxQueue, chainRef{chainID: chainID, index: index})
	}
	l.idxSize = size
}

// indexLoop brings the chain index up to date once per checkpoint interval
// until ctx ends.
func (l *Ledger) indexLoop(ctx context.Context) {
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.publishChainIndex(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("publishing the chain index; will retry", "err", err)
			}
		}
	}
}

// publishChainIndex publishes the queued index entries and then the mark.
// On failure the entries go back to the queue and no mark is published.
func (l *Ledger) publishChainIndex(ctx context.Context) error {
	l.idxMu.Lock()
	refs, size := l.idxQueue, l.idxSize
	l.idxQueue = nil
	marked := l.idxMarked
	l.idxMu.Unlock()
	if len(refs) == 0 && size == marked {
		return nil
	}
	err := l.publishRefs(ctx, refs)
	if err == nil {
		_, err = l.js.Publish(ctx, streams.ChainsMarkSubject, strconv.AppendInt(nil, size, 10))
		if err != nil {
			err = fmt.Errorf("publishing the chain index mark at size %d: %w", size, err)
		}
	}
	l.idxMu.Lock()
	defer l.idxMu.Unlock()
	if err != nil {
		l.idxQueue = append(refs, l.idxQueue...)
		return err
	}
	l.idxMarked = size
	l.metrics.chainIndexSize.Set(float64(size))
	return nil
}

// publishRefs publishes refs grouped by chain, asynchronously, and waits for
// every acknowledgement.
func (l *Ledger) publishRefs(ctx context.Context, refs []chainRef) error {
	byChain := map[string][]int64{}
	var order []string
	for _, r := range refs {
		if _, ok := byChain[r.chainID]; !ok {
			order = append(order, r.chainID)
		}
		byChain[r.chainID] = append(byChain[r.chainID], r.index)
	}
	var futs []jetstream.PubAckFuture
	for _, id := range order {
		for chunk := range slices.Chunk(byChain[id], maxIndexesPerMsg) {
			m := &nats.Msg{
				Subject: streams.ChainSubject(id),
				Header:  nats.Header{streams.ChainIDHeader: []string{id}},
				Data:    streams.FormatIndexes(chunk),
			}
			f, err := l.js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("publishing the chain index of %q: %w", id, err)
			}
			futs = append(futs, f)
		}
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publishing the chain index: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
