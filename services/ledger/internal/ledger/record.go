package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// deadLetterPrefix starts the subjects of dead-lettered copies.
var deadLetterPrefix = events.SubjectPrefix + "." + events.KindDeadLetter + "."

// pending is one entry on its way through the pipeline: built by the
// handler, encoded by a sign worker, gathered into a bundle by the publisher
// and committed by the committer.
type pending struct {
	// Set by the handler.
	index     uint64
	streamSeq uint64       // RAMPART sequence of the recorded message
	entry     *entry.Entry // until encoded
	event     decoded      // the event, for completeEvent, until encoded; none for a dead letter
	msg       storedMsg    // the RAMPART message, until encoded
	// ack is the delivered RAMPART message, acknowledged once the entry is
	// stored (the consumer acknowledges all before it); nil for a message
	// read by fillGap.
	ack      jetstream.Msg
	kind     entry.Kind
	received time.Time
	signed   chan struct{} // closed by the sign worker when the fields below are set

	// Set by the sign worker.
	chainID string
	data    []byte // canonical entry bytes
	leaf    tlog.Hash
	sig     string // base64 Ed25519 signature over data, only for an entry too long for a bundle
	err     error  // encoding failed (a bug: the handler builds only valid entries)
}

// bundleMsg is one LEDGER message on its way: a bundle of consecutive
// entries, or one signed entry too long for a bundle.
type bundleMsg struct {
	first  uint64
	ps     []*pending
	msg    *nats.Msg
	id     string                 // its Nats-Msg-Id
	prevID string                 // the Nats-Msg-Id of the LEDGER message before it
	seq    uint64                 // the LEDGER sequence it must be stored at
	fut    jetstream.PubAckFuture // nil when the async publish could not be started
}

// handle is the consumer handler, called for one message at a time, in
// stream order. It decides, in order, what the message becomes (an entry, a
// duplicate or poison), gives the entry its index and hands it to the sign
// workers and, in the same order, to the publisher. It returns nil once the
// entry is handed on (the committer acknowledges the RAMPART message once
// the bundle holding the entry is stored: the LEDGER stream, not the ack
// floor, records progress), bus.Poison for a message that is not a
// CloudEvent, and an error only when the ledger is stopping.
//
// The per-entry work that does not depend on other entries (canonical
// encoding, leaf hash) happens in the sign workers, so this handler, which
// is the only serial step before JetStream, stays short.
func (l *Ledger) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) error {
	// A callback that arrives after record stopped the consumer must not
	// touch the state or send on the closed channels.
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.sendClosed {
		return fmt.Errorf("recording %s: %w", msg.Subject(), context.Canceled)
	}
	seq := meta.Sequence.Stream
	if seq > l.lastSeq+1 {
		// Messages before this one were delivered to a connection that went
		// away; the server redelivers them only after AckWait, behind this
		// one. Record them first, from the stream, so that none is taken
		// for a repeat when its redelivery comes.
		if err := l.fillGap(ctx, seq); err != nil {
			return err
		}
	}
	if seq <= l.lastSeq {
		// A redelivery of a message already handled. A message that was
		// poison is poison again, so that the bus retries dead-lettering it
		// when that is what failed.
		if !strings.HasPrefix(msg.Subject(), deadLetterPrefix) {
			if _, err := events.FromMsg(msg.Headers(), msg.Data()); err != nil {
				return bus.Poison(err)
			}
		}
		return nil
	}
	return l.recordMsg(ctx, delivered{msg}, seq)
}

// delivered is a RAMPART message delivered to the consumer.
type delivered struct{ jetstream.Msg }

// fillGap records, in stream order, the RAMPART messages between the last
// one handled and seq, read from the stream. A message the stream no
// longer holds (deleted, or expired by age) is counted as never recorded.
func (l *Ledger) fillGap(ctx context.Context, seq uint64) error {
	stream, err := l.bus.JetStream().Stream(ctx, bus.StreamName)
	if err != nil {
		return fmt.Errorf("read RAMPART before seq %d: %w", seq, err)
	}
	for s := l.lastSeq + 1; s < seq; s++ {
		raw, err := stream.GetMsg(ctx, s)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			l.log.Error("RAMPART message gone before the ledger recorded it", "seq", s)
			l.metrics.expired.Inc()
			l.lastSeq = s
			continue
		}
		if err != nil {
			return fmt.Errorf("read RAMPART seq %d: %w", s, err)
		}
		l.log.Info("recording a message out of delivery order", "seq", s, "delivered", seq)
		// Poison here is dead-lettered when its own redelivery comes.
		if err := l.recordMsg(ctx, fetched{raw}, s); err != nil && !errors.Is(err, bus.ErrPoison) {
			return err
		}
	}
	return nil
}

// fetched is a RAMPART message read from the stream by sequence rather than
// delivered to the consumer.
type fetched struct{ m *jetstream.RawStreamMsg }

func (f fetched) Subject() string      { return f.m.Subject }
func (f fetched) Headers() nats.Header { return f.m.Header }
func (f fetched) Data() []byte         { return f.m.Data }

// storedMsg is what the ledger reads of a RAMPART message.
type storedMsg interface {
	Subject() string
	Headers() nats.Header
	Data() []byte
}

// recordMsg makes msg, at stream sequence seq, the next entry (or a
// duplicate, or poison) and hands it on; see handle.
func (l *Ledger) recordMsg(ctx context.Context, msg storedMsg, seq uint64) error {
	received := time.Now()
	e, dedupKey, ev, err := l.entryFor(msg, seq)
	if err != nil {
		l.metrics.poison.Inc()
		l.lastSeq = seq
		return bus.Poison(err)
	}
	if e == nil {
		l.metrics.duplicates.Inc()
		l.log.Debug("event already recorded", "subject", msg.Subject(), "seq", seq, "entry", l.dedup[dedupKey])
		l.lastSeq = seq
		return nil
	}
	e.Index = l.next
	p := &pending{index: e.Index, streamSeq: seq, entry: e, event: ev, msg: msg, kind: e.Kind,
		received: received, signed: make(chan struct{})}
	if d, ok := msg.(delivered); ok {
		p.ack = d.Msg
	}
	// The publisher takes entries in the order they are queued here; the
	// sign workers may finish them in any order. Both channels hold at most
	// Window entries, so a slow JetStream holds the handler back.
	select {
	case l.toSign <- p:
	case <-ctx.Done():
		return fmt.Errorf("recording %s seq %d: %w", msg.Subject(), seq, context.Cause(ctx))
	}
	select {
	case l.toPublish <- p:
	case <-ctx.Done():
		// The sign workers may still sign p; nobody publishes it, and the
		// message is redelivered.
		return fmt.Errorf("recording %s seq %d: %w", msg.Subject(), seq, context.Cause(ctx))
	}
	l.next++
	if dedupKey != "" {
		l.dedup[dedupKey] = p.index
	}
	l.lastSeq = seq
	return nil
}

// decoded is an event entry's event as the handler read it, for
// completeEvent: its attributes, read by the transcoder (decision 0028,
// "Append fast path"), or FromMsg's event for a message the transcoder
// does not take.
type decoded struct {
	attrs events.Attributes // when fast
	fast  bool
	event *cloudevents.Event // when not fast; nil for a dead letter
}

// entryFor builds the entry for a RAMPART message, without its index and,
// for an event, without the parts completeEvent adds from the returned
// event. It returns a nil entry for an event that is already recorded, and
// an error for a message that is not a CloudEvent.
func (l *Ledger) entryFor(msg storedMsg, seq uint64) (e *entry.Entry, dedupKey string, ev decoded, err error) {
	e = &entry.Entry{
		RecordedAt: l.opts.Now().UTC(),
		Subject:    msg.Subject(),
		StreamSeq:  seq,
	}
	if strings.HasPrefix(msg.Subject(), deadLetterPrefix) {
		h := msg.Headers()
		e.Kind = entry.KindDeadLetter
		e.Reason = h.Get(bus.HeaderDeadLetterReason)
		if e.Reason == "" {
			e.Reason = "(no " + bus.HeaderDeadLetterReason + " header)"
		}
		e.OriginalSubject = h.Get(bus.HeaderOriginalSubject)
		e.Headers = deadLetterHeaders(h)
		e.Data = msg.Data()
		return e, "", decoded{}, nil
	}
	// A message the transcoder takes is one FromMsg decodes, to these
	// attributes; FromMsg decides about every other.
	if ev.attrs, ev.fast = events.ReadAttributes(msg.Headers()); ev.fast {
		e.EventID, e.Source, e.Type = ev.attrs.ID, ev.attrs.Source, ev.attrs.Type
	} else {
		event, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			return nil, "", decoded{}, err
		}
		ev.event = &event
		e.EventID, e.Source, e.Type = event.ID(), event.Source(), event.Type()
	}
	dedupKey = e.Source + "\x00" + e.EventID
	if _, dup := l.dedup[dedupKey]; dup {
		return nil, dedupKey, decoded{}, nil
	}
	// The structured encoding and the chain id are left to the sign
	// workers (completeEvent): they depend on nothing but the event.
	e.Kind = entry.KindEvent
	return e, dedupKey, ev, nil
}

// completeEvent fills in the structured-mode event and the chain id of an
// event entry; a sign worker calls it before encoding the entry. The
// transcoder writes them into scratch, compact (compact is then true), for
// the messages whose data it takes; FromMsg, Structured and ChainID for
// every other. An event that FromMsg decoded always encodes; should it ever
// not, the message is recorded as a dead-letter entry with the reason, so
// that it still has its place in the ledger (it is not terminated on the
// bus: it was already acknowledged).
func completeEvent(p *pending, scratch []byte) (compact bool) {
	e := p.entry
	if p.event.fast {
		out, chainID, ok := p.event.attrs.AppendStructured(scratch[:0], p.msg.Data())
		if ok {
			e.Event, e.ChainID, p.chainID = out, chainID, chainID
			return true
		}
		ev, err := events.FromMsg(p.msg.Headers(), p.msg.Data())
		if err != nil { // ReadAttributes said it decodes: a bug
			deadLetterOf(p, fmt.Errorf("decoding: %w", err))
			return false
		}
		p.event.event = &ev
	}
	structured, err := events.Structured(*p.event.event)
	if err == nil {
		e.Event = structured
		e.ChainID = events.ChainID(*p.event.event)
		p.chainID = e.ChainID
		return false
	}
	deadLetterOf(p, err)
	return false
}

// deadLetterOf makes p's entry the dead-letter entry of an event that did
// not encode.
func deadLetterOf(p *pending, err error) {
	e := p.entry
	*e = entry.Entry{
		Index:           e.Index,
		RecordedAt:      e.RecordedAt,
		Subject:         e.Subject,
		StreamSeq:       e.StreamSeq,
		Kind:            entry.KindDeadLetter,
		Reason:          fmt.Sprintf("ledger: encoding event %s in structured mode: %v", e.EventID, err),
		OriginalSubject: e.Subject,
		Headers:         deadLetterHeaders(p.msg.Headers()),
		Data:            p.msg.Data(),
	}
	p.kind = entry.KindDeadLetter
}

// deadLetterHeaders returns the headers of a dead-lettered message that its
// entry records besides the reason and the original subject: what the poison
// message claimed to be (its ce-* attributes, content-type, traceparent, ...)
// and where the bus found it. JetStream's own headers (Nats-*, such as the
// dead letter's Nats-Msg-Id) are left out, and so are names without values.
func deadLetterHeaders(h nats.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for name, values := range h {
		switch {
		case len(values) == 0,
			len(name) >= 5 && strings.EqualFold(name[:5], "Nats-"),
			strings.EqualFold(name, bus.HeaderDeadLetterReason),
			strings.EqualFold(name, bus.HeaderOriginalSubject):
			continue
		}
		out[name] = values
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// expect returns the publish conditions for a message that goes right after
// LEDGER message last, whose message id is prevID (none when it had none).
func (l *Ledger) expect(last uint64, prevID string) []jetstream.PublishOpt {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequence(last)}
	if prevID != "" {
		opts = append(opts, jetstream.WithExpectLastMsgID(prevID))
	}
	return opts
}
