package ledger

import (
	"context"
	"encoding/hex"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// signLoop completes, encodes, hashes and signs entries from l.toSign until the channel
// is closed. Several run at once (GOMAXPROCS): an entry does not depend on any
// other, and the Ed25519 signature is most of the ledger's own CPU per entry.
func (l *Ledger) signLoop() {
	for p := range l.toSign {
		l.sign(p)
	}
}

// sign fills in p's canonical bytes, leaf hash, message id and signature, and
// then closes p.signed.
func (l *Ledger) sign(p *pending) {
	defer close(p.signed)
	if p.event != nil {
		completeEvent(p)
	}
	data, err := entry.Marshal(p.entry)
	if err != nil {
		p.err = fmt.Errorf("encoding ledger entry %d: %w", p.index, err)
		return
	}
	p.data = data
	p.leaf = tlog.RecordHash(data)
	p.id = hex.EncodeToString(p.leaf[:])
	p.sig = l.signer.SignEntry(data)
	// Only the bytes are needed from here on.
	p.entry, p.event, p.msg = nil, nil, nil
}

// publishLoop takes entries in handler order from l.toPublish, waits until
// each is signed, publishes it asynchronously with the expected last LEDGER
// sequence and message id, and hands it to the committer. It closes
// l.inflight when l.toPublish is closed and drained, or at once (dropping the
// rest) when ctx ends: the committer has stopped. Entries that are dropped
// were never published; the rollback that follows forgets them and their
// RAMPART messages are read again.
//
// Entry i may only be stored right after this ledger's entry i-1 (expected
// last sequence i and expected last message id): the server enforces the
// chain, so entries pipelined ahead of a failed one can never land after
// someone else's message. If the async publish cannot even start, the
// committer publishes the entry synchronously.
func (l *Ledger) publishLoop(ctx context.Context) error {
	defer close(l.inflight)
	for p := range l.toPublish {
		select {
		case <-p.signed:
		case <-ctx.Done():
			return nil
		}
		if p.err != nil {
			return p.err
		}
		l.published.Store(int64(p.index) + 1)
		fut, err := l.js.PublishMsgAsync(l.entryMsg(p), l.expect(p.index, l.prevID)...)
		if err != nil {
			l.log.Debug("async publish of entry failed to start", "entry", p.index, "err", err)
		} else {
			p.fut = fut
		}
		select {
		case l.inflight <- p:
		case <-ctx.Done():
			return nil
		}
		l.prevID = p.id
	}
	return nil
}
