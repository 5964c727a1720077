package replay

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/eventline"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// readWindow reads the stored messages on o.Subject from o.Since, in stream
// order, up to o.Until or to sequence last, whichever comes first, and hands
// each event to sk (or to o.Visit when sk is nil).
func readWindow(ctx context.Context, s jetstream.Stream, o Options, last uint64, st *Stats, sk sink) error {
	since := o.Since
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{o.Subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(window))
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	defer it.Stop()
	ci := cons.CachedInfo()
	if ci == nil || ci.NumPending == 0 {
		return nil
	}
	var prev uint64 // sequence of the last message handled
	var read uint64 // messages of the window read so far
	for {
		nctx, cancel := context.WithTimeout(ctx, idle)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped after %d events: %w", st.Events, ctx.Err())
			}
			return fmt.Errorf("reading %s after %d events: %w", bus.StreamName, st.Events, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("message on %s without stream metadata: %w", msg.Subject(), err)
		}
		seq := meta.Sequence.Stream
		if seq <= prev {
			continue // seen before the ordered consumer recreated itself
		}
		prev = seq
		if seq > last || (!o.Until.IsZero() && !meta.Timestamp.Before(o.Until)) {
			return nil
		}
		if err := replayOne(ctx, o, msg, meta, st, sk); err != nil {
			return err
		}
		read++
		if o.Progress != nil {
			o.Progress(read, read+meta.NumPending) // Until may stop earlier
		}
		if seq == last || meta.NumPending == 0 {
			return nil
		}
	}
}

// replayOne skips a dead letter or an invalid event, and hands a valid one
// to sk, or to o.Visit when sk is nil.
func replayOne(ctx context.Context, o Options, msg jetstream.Msg, meta *jetstream.MsgMetadata, st *Stats, sk sink) error {
	if eventline.IsDeadLetter(msg.Subject()) {
		st.DeadLetters++
		return nil
	}
	ev, err := events.FromMsg(msg.Headers(), msg.Data())
	if err == nil {
		err = events.Validate(ev)
	}
	if err != nil {
		st.Invalid++
		o.Notice(fmt.Sprintf("skipping #%d on %s: %v", meta.Sequence.Stream, msg.Subject(), err))
		return nil
	}
	if sk == nil {
		if o.Visit != nil {
			if err := o.Visit(msg); err != nil {
				return err
			}
		}
		st.Events++
		return nil
	}
	if err := sk.send(ctx, msg.Subject(), meta.Sequence.Stream, ev, st); err != nil {
		return fmt.Errorf("replayed %d events, then #%d: %w", st.Events, meta.Sequence.Stream, err)
	}
	st.Events++
	return nil
}
