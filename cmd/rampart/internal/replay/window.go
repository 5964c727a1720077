package replay

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/eventline"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// chunkSize is how many consecutive messages of the window one worker
// decodes and validates at a time; PullBatch how many messages one pull
// request of the reader asks for (docs/decisions/0030-replay-read-rate.md
// has the figures that chose both).
const (
	chunkSize = 64
	PullBatch = 1024
)

// item is one message of the window and what checking it found.
type item struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	dead bool              // a dead letter: not replayed
	ev   cloudevents.Event // the event, when err is nil
	err  error             // why it is not a valid event
}

// chunk is a run of consecutive messages of the window, checked by a worker
// and handed on in stream order. A chunk with an error ends the window: the
// error is reported after the chunk's items.
type chunk struct {
	items []item
	err   error
	done  chan struct{} // closed once the items are checked
}

// check decodes and validates the chunk's events.
func (c *chunk) check() {
	for i := range c.items {
		it := &c.items[i]
		if it.dead = eventline.IsDeadLetter(it.msg.Subject()); it.dead {
			continue
		}
		it.ev, it.err = events.ReadMsg(it.msg.Headers(), it.msg.Data()) // FromMsg, then Validate
	}
	close(c.done)
}

// errStopped: the reader's Next failed. It is reported with the number of
// events handed on before it, which only the hand-off knows.
type errStopped struct{ err error }

func (e errStopped) Error() string { return e.err.Error() }

// readWindow reads the stored messages on o.Subject from o.Since, in stream
// order, up to o.Until or to sequence last, whichever comes first, and hands
// each event to sk (or to o.Visit when sk is nil).
//
// One goroutine reads the messages and cuts them into chunks; workers, one
// per CPU, decode and validate the chunks; this goroutine takes the chunks
// in the order they were read and hands their events on one by one, so
// the copies, the notices and the progress follow stream order.
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
	it, err := cons.Messages(jetstream.PullMaxMessages(PullBatch))
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	defer it.Stop()
	ci := cons.CachedInfo()
	if ci == nil || ci.NumPending == 0 {
		return nil
	}

	rctx, cancel := context.WithCancel(ctx)
	workers := runtime.GOMAXPROCS(0)
	order := make(chan *chunk, 2*workers) // chunks in stream order, bounded read-ahead
	work := make(chan *chunk, 2*workers)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for range order { // let the reader see the cancellation
		}
		wg.Wait()
	}()
	for range workers {
		wg.Go(func() {
			for c := range work {
				c.check()
			}
		})
	}
	var ended bool // order was given the chunk that ends the window
	wg.Go(func() {
		defer close(work)
		defer close(order)
		ended = readChunks(rctx, it, o, last, order, work)
	})

	var read uint64 // messages of the window read so far
	for c := range order {
		<-c.done
		for i := range c.items {
			if ctx.Err() != nil { // as soon as asked, not after the chunks read ahead
				return fmt.Errorf("stopped after %d events: %w", st.Events, ctx.Err())
			}
			if err := handOn(ctx, o, &c.items[i], st, sk); err != nil {
				return err
			}
			pending := c.items[i].meta.NumPending
			c.items[i] = item{} // the message and event can go
			read++
			if o.Progress != nil {
				o.Progress(read, read+pending) // Until may stop earlier
			}
		}
		if c.err != nil {
			var stopped errStopped
			if errors.As(c.err, &stopped) {
				if ctx.Err() != nil {
					return fmt.Errorf("stopped after %d events: %w", st.Events, ctx.Err())
				}
				return fmt.Errorf("reading %s after %d events: %w", bus.StreamName, st.Events, stopped.err)
			}
			return c.err
		}
	}
	if !ended { // the reader saw ctx done between two chunks
		return fmt.Errorf("stopped after %d events: %w", st.Events, ctx.Err())
	}
	return nil
}

// readChunks reads the window's messages from it and sends them, in chunks,
// to order (all of them, in stream order) and to work (those with
// messages), until the window ends, reading fails or ctx is done. It says
// whether order was given the chunk that ends the window: the last one, or
// one carrying the error that stops it.
func readChunks(ctx context.Context, it jetstream.MessagesContext, o Options, last uint64, order, work chan<- *chunk) (ended bool) {
	c := &chunk{done: make(chan struct{}), items: make([]item, 0, chunkSize)}
	// send hands c on and starts the next chunk; false when ctx is done
	// first.
	send := func() bool {
		select {
		case order <- c:
		case <-ctx.Done():
			return false
		}
		if len(c.items) == 0 {
			close(c.done)
			return true
		}
		select {
		case work <- c:
		case <-ctx.Done():
			// c is in order but unchecked: it ends the window with the
			// cancellation instead of its items.
			c.items, c.err = nil, errStopped{ctx.Err()}
			close(c.done)
			ended = true
			return false
		}
		c = &chunk{done: make(chan struct{}), items: make([]item, 0, chunkSize)}
		return true
	}
	end := func() bool { return send() || ended }
	// One timer, reset after each message, bounds the wait for the next
	// one: a context with a deadline for each message costs more than
	// reading it.
	nctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(idle, func() { cancel(context.DeadlineExceeded) })
	defer timer.Stop()
	var prev uint64 // sequence of the last message read
	for {
		msg, err := it.Next(jetstream.NextContext(nctx))
		if err != nil {
			if cause := context.Cause(nctx); ctx.Err() == nil && cause != nil {
				err = cause // waited idle for the next message
			}
			c.err = errStopped{err}
			return end()
		}
		timer.Reset(idle)
		meta, err := msg.Metadata()
		if err != nil {
			c.err = fmt.Errorf("message on %s without stream metadata: %w", msg.Subject(), err)
			return end()
		}
		seq := meta.Sequence.Stream
		if seq <= prev {
			continue // seen before the ordered consumer recreated itself
		}
		prev = seq
		if seq > last || (!o.Until.IsZero() && !meta.Timestamp.Before(o.Until)) {
			return end()
		}
		c.items = append(c.items, item{msg: msg, meta: meta})
		if seq == last || meta.NumPending == 0 {
			return end()
		}
		if len(c.items) == chunkSize && !send() {
			return ended
		}
	}
}

// handOn counts a dead letter or an invalid event as skipped, and hands a
// valid one to sk, or to o.Visit when sk is nil.
func handOn(ctx context.Context, o Options, it *item, st *Stats, sk sink) error {
	if it.dead {
		st.DeadLetters++
		return nil
	}
	if it.err != nil {
		st.Invalid++
		o.Notice(fmt.Sprintf("skipping #%d on %s: %v", it.meta.Sequence.Stream, it.msg.Subject(), it.err))
		return nil
	}
	if sk == nil {
		if o.Visit != nil {
			if err := o.Visit(it.msg); err != nil {
				return err
			}
		}
		st.Events++
		return nil
	}
	if err := sk.send(ctx, it.msg.Subject(), it.meta.Sequence.Stream, it.ev, st); err != nil {
		return fmt.Errorf("replayed %d events, then #%d: %w", st.Events, it.meta.Sequence.Stream, err)
	}
	st.Events++
	return nil
}
