package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// signLoop completes, encodes and hashes entries from l.toSign until the
// channel is closed. Several run at once (GOMAXPROCS): an entry does not
// depend on any other.
func (l *Ledger) signLoop() {
	var scratch []byte // the structured event, until the entry is encoded
	for p := range l.toSign {
		scratch = l.sign(p, scratch)
	}
}

// sign fills in p's canonical bytes and leaf hash, and then closes p.signed.
// Entries too long for a bundle are signed, to be written one per message
// as before bundles. It returns scratch, grown, for the next entry.
func (l *Ledger) sign(p *pending, scratch []byte) []byte {
	defer close(p.signed)
	marshal := entry.Marshal
	if p.event.fast || p.event.event != nil {
		if completeEvent(p, scratch) {
			scratch = p.entry.Event[:0]
			marshal = entry.MarshalCompactEvent
		}
	}
	data, err := marshal(p.entry)
	if err != nil {
		p.err = fmt.Errorf("encoding ledger entry %d: %w", p.index, err)
		return scratch
	}
	p.data = data
	p.leaf = tlog.RecordHash(data)
	if len(data) > bundle.MaxEntry {
		p.sig = l.signer.SignEntry(data)
	}
	// Only the bytes are needed from here on.
	p.entry, p.event, p.msg = nil, decoded{}, nil
	return scratch
}

// maxBundlesInFlight is how many bundles the publisher lets wait for their
// acknowledgement before it publishes the next: while they wait, entries
// gather into the next bundle, so bundles grow with the load and a lone
// event is published at once.
const maxBundlesInFlight = 2

// maxBundleBytes bounds the data of one bundle (a variable so that tests
// can cut bundles small).
var maxBundleBytes = 512 << 10

// bundleBytes bounds the data of one bundle: well below the server's
// payload limit (1 MB by default), leaving room for the headers. A bundle
// always takes its first entry, whatever its size.
func (l *Ledger) bundleBytes() int {
	return min(maxBundleBytes, int(l.bus.Conn().MaxPayload())/2)
}

// publishLoop takes entries in handler order from l.toPublish, waits until
// each is encoded, gathers them into bundles (decision 0028: at most 256
// entries, never across a 256-entry tile boundary, cut when nothing more is
// waiting and fewer than maxBundlesInFlight bundles are unacknowledged),
// publishes each asynchronously with the expected last LEDGER sequence and
// message id, and hands it to the committer. It closes l.inflight when
// l.toPublish is closed and drained, or at once (dropping the rest) when
// ctx ends: the committer has stopped. Bundles that are dropped were never
// published; the rollback that follows forgets them and their RAMPART
// messages are read again.
//
// Bundle k may only be stored right after this ledger's message k-1
// (expected last sequence and message id): the server enforces the chain,
// so bundles pipelined ahead of a failed one can never land after someone
// else's message. If the async publish cannot even start, the committer
// publishes the bundle synchronously.
func (l *Ledger) publishLoop(ctx context.Context) error {
	defer close(l.inflight)
	limit := l.bundleBytes()
	var cur []*pending
	size := 0
	flush := func() bool {
		if len(cur) == 0 {
			return true
		}
		b := l.newBundle(cur)
		cur, size = nil, 0
		return l.publish(ctx, b)
	}
	for {
		var p *pending
		var ok bool
		if len(cur) > 0 && len(l.toPublish) == 0 && l.bundlesInFlight.Load() < maxBundlesInFlight {
			if !flush() {
				return nil
			}
			continue
		}
		var committed <-chan struct{}
		if len(cur) > 0 {
			committed = l.committedBundle
		}
		select {
		case p, ok = <-l.toPublish:
		case <-committed:
			continue
		case <-ctx.Done():
			return nil
		}
		if !ok {
			flush()
			return nil
		}
		select {
		case <-p.signed:
		case <-ctx.Done():
			return nil
		}
		if p.err != nil {
			return p.err
		}
		if p.sig != "" {
			// Too long for a bundle: one signed entry in its own message.
			if !flush() || !l.publish(ctx, l.newBundle([]*pending{p})) {
				return nil
			}
			continue
		}
		if len(cur) > 0 && size+2+len(p.data) > limit {
			if !flush() {
				return nil
			}
		}
		cur = append(cur, p)
		size += 2 + len(p.data)
		if (p.index+1)%bundle.TileWidth == 0 {
			if !flush() {
				return nil
			}
		}
	}
}

// newBundle makes the LEDGER message for entries ps (consecutive, in one
// tile), to be stored right after the last message published.
func (l *Ledger) newBundle(ps []*pending) *bundleMsg {
	l.pubSeq++
	b := &bundleMsg{first: ps[0].index, ps: ps, seq: l.pubSeq, prevID: l.prevID}
	if ps[0].sig != "" {
		p := ps[0]
		b.id = hex.EncodeToString(p.leaf[:])
		b.msg = &nats.Msg{Subject: streams.EntriesSubject, Data: p.data, Header: nats.Header{
			entry.SignatureHeader: []string{p.sig},
			jetstream.MsgIDHeader: []string{b.id},
		}}
	} else {
		n := 0
		for _, p := range ps {
			n += 2 + len(p.data)
		}
		data := make([]byte, 0, n)
		leaves := make([]tlog.Hash, len(ps))
		for i, p := range ps {
			data = bundle.Append(data, p.data)
			leaves[i] = p.leaf
		}
		enc := bundle.EncodeLeaves(leaves)
		sum := sha256.Sum256([]byte(enc))
		b.id = hex.EncodeToString(sum[:])
		first := position(b.first)
		b.msg = &nats.Msg{Subject: streams.EntriesSubject, Data: data, Header: nats.Header{
			bundle.FirstHeader:    []string{strconv.FormatInt(first, 10)},
			bundle.LeavesHeader:   []string{enc},
			bundle.MACHeader:      []string{l.signer.BundleMAC(first, enc)},
			jetstream.MsgIDHeader: []string{b.id},
		}}
	}
	l.prevID = b.id
	return b
}

// publish starts the async publish of b and hands it to the committer; false
// when ctx ended first.
func (l *Ledger) publish(ctx context.Context, b *bundleMsg) bool {
	last := b.ps[len(b.ps)-1].index
	l.published.Store(position(last) + 1)
	l.bundlesInFlight.Add(1)
	fut, err := l.js.PublishMsgAsync(b.msg, l.expect(b.seq-1, b.prevID)...)
	if err != nil {
		l.log.Debug("async publish of a bundle failed to start", "first", b.first, "err", err)
	} else {
		b.fut = fut
	}
	select {
	case l.inflight <- b:
		return true
	case <-ctx.Done():
		return false
	}
}
