package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// ChainReader reads the ledger entries of one release's chain, in ledger
// order (client.Client, the ledger's query API).
type ChainReader interface {
	Chain(ctx context.Context, chainID string) ([]*entry.Entry, error)
}

var _ ChainReader = (*client.Client)(nil)

// ErrLedgerBehind is returned when the ledger has not recorded a rollback
// within the wait; the message is retried later.
var ErrLedgerBehind = errors.New("the ledger has not recorded the rollback yet")

// waitForEvent polls the chain until it holds eventID. When the wait runs
// out it returns ErrLedgerBehind, or, when degrade is set (the last
// delivery), what it found so that the report is built without the ledger
// rather than never. A chain the ledger does not know yet is an empty one.
func (n *Dispatcher) waitForEvent(ctx context.Context, chainID, eventID string, degrade bool) ([]*entry.Entry, error) {
	start := time.Now()
	deadline := start.Add(n.cfg.LedgerWait)
	poll := n.cfg.LedgerPoll
	for {
		es, err := n.cfg.Chains.Chain(ctx, chainID)
		if errors.Is(err, client.ErrNotFound) {
			es, err = nil, nil
		}
		if err == nil && containsEvent(es, eventID) {
			n.metrics.ledgerWait.Observe(time.Since(start).Seconds())
			return es, nil
		}
		if time.Now().After(deadline) {
			switch {
			case degrade:
				return es, nil
			case err != nil:
				return nil, fmt.Errorf("read chain %s from the ledger: %w", chainID, err)
			default:
				return nil, fmt.Errorf("%w: event %s is not in chain %s after %s", ErrLedgerBehind, eventID, chainID, n.cfg.LedgerWait)
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the ledger to record %s: %w", eventID, ctx.Err())
		case <-t.C:
		}
		poll = min(2*poll, time.Second)
	}
}

func containsEvent(es []*entry.Entry, id string) bool {
	for _, e := range es {
		if e.Kind == entry.KindEvent && e.EventID == id {
			return true
		}
	}
	return false
}
