package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampartci/rampart/pkg/events"
)

// Headers set on a dead-lettered copy of a message.
const (
	HeaderDeadLetterReason = "Rampart-Dead-Letter-Reason"
	HeaderOriginalSubject  = "Rampart-Original-Subject"
	HeaderOriginalSequence = "Rampart-Original-Sequence"
	HeaderConsumer         = "Rampart-Consumer"
)

// DeadLetterSubject is where consumer durable sends the messages it gives up on.
func DeadLetterSubject(durable string) string {
	return events.SubjectPrefix + "." + events.KindDeadLetter + "." + events.SubjectToken(durable)
}

// ConsumerOptions configures a durable pull consumer on the RAMPART stream.
type ConsumerOptions struct {
	// Durable names the consumer; replicas of a service share it.
	Durable string
	// FilterSubjects selects the events, e.g. "rampart.scan.>".
	FilterSubjects []string
	// MaxDeliver bounds deliveries of one message (default 5); after the last
	// failed attempt the message is dead-lettered.
	MaxDeliver int
	// AckWait is how long a delivery may go unacknowledged (default 30s);
	// long handlers call Delivery.InProgress.
	AckWait time.Duration
	// Backoff is the NakWithDelay delay after the n-th failed attempt; the
	// last value repeats (default 1s, 5s, 15s, 30s).
	Backoff []time.Duration
	// MaxAckPending bounds messages in flight (default 1000).
	MaxAckPending int
	// StartSequence, when set, (re)creates the consumer so that it starts at
	// this stream sequence. Used by consumers whose own store is the record
	// of their position.
	StartSequence uint64
}

func (o *ConsumerOptions) defaults() error {
	if o.Durable == "" {
		return errors.New("consumer: durable name is required")
	}
	if len(o.FilterSubjects) == 0 {
		return fmt.Errorf("consumer %s: at least one filter subject is required", o.Durable)
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if len(o.Backoff) == 0 {
		o.Backoff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 1000
	}
	return nil
}

// Delivery is one event handed to a Handler.
type Delivery struct {
	Event cloudevents.Event
	Msg   jetstream.Msg
	// Attempt counts deliveries of this message, from 1.
	Attempt uint64
	// StreamSequence is the message's position in the RAMPART stream.
	StreamSequence uint64

	ackWait time.Duration
	log     *slog.Logger
}

// InProgress tells the server the handler is still working, resetting AckWait.
func (d Delivery) InProgress() error { return d.Msg.InProgress() }

// KeepAlive tells the server the handler is still working every third of
// the consumer's AckWait, so long work is not redelivered meanwhile, until
// the returned stop is called (stop waits for the last InProgress). A
// Delivery made by hand (no message) has nothing to keep alive.
func (d Delivery) KeepAlive(ctx context.Context) (stop func()) {
	every := d.ackWait / 3
	if d.Msg == nil || every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := d.InProgress(); err != nil && d.log != nil {
					d.log.Warn("extend ack deadline", "event", d.Event.ID(), "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Handler handles one event. It returns nil to Ack; an error wrapped with
// Poison to terminate and dead-letter; any other error to NakWithDelay and be
// retried, until MaxDeliver attempts have failed.
type Handler func(ctx context.Context, d Delivery) error

// RawHandler handles one message without decoding it, with the same
// contract as Handler.
type RawHandler func(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) error

// Consumer is a running durable consumer.
type Consumer struct {
	cc      jetstream.ConsumeContext
	cancel  context.CancelFunc
	durable string

	// mu guards stopped and wg.Add: once stopped, no handler starts, so
	// Stop and Drain can wait for the running one and be sure it is the last.
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// begin registers a handler run; it reports false once the consumer stopped.
func (c *Consumer) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.wg.Add(1)
	return true
}

// halt stops new handler runs and waits for the running one.
func (c *Consumer) halt() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
}

// Consume runs h for every event the durable consumer receives, in order,
// one at a time. Messages that are not valid CloudEvents, fail schema
// validation or carry a version this code does not read are terminated and
// dead-lettered without reaching h.
func (b *Bus) Consume(ctx context.Context, opts ConsumerOptions, h Handler) (*Consumer, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	return b.ConsumeRaw(ctx, opts, func(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) error {
		ev, err := b.schemas.ReadMsg(msg.Headers(), msg.Data())
		if err != nil {
			return Poison(err)
		}
		ctx = ExtractTrace(ctx, ev)
		ctx, span := b.tracer.Start(ctx, "consume "+events.KindOf(ev.Type()), trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.consumer.group.name", opts.Durable),
				attribute.String("cloudevents.event_id", ev.ID()), attribute.String("cloudevents.event_type", ev.Type())))
		defer span.End()
		err = h(ctx, Delivery{Event: ev, Msg: msg, Attempt: meta.NumDelivered, StreamSequence: meta.Sequence.Stream,
			ackWait: opts.AckWait, log: b.log.With("consumer", opts.Durable)})
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	})
}

// EnsureConsumer creates the durable consumer, or updates it to opts,
// without consuming from it.
func (b *Bus) EnsureConsumer(ctx context.Context, opts ConsumerOptions) (jetstream.Consumer, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        opts.Durable,
		FilterSubjects: opts.FilterSubjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        opts.AckWait,
		MaxDeliver:     opts.MaxDeliver,
		MaxAckPending:  opts.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if opts.StartSequence > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = opts.StartSequence
		// The start of a durable cannot be changed in place; the caller's
		// store, not the consumer, is the record of the position.
		if err := b.js.DeleteConsumer(ctx, StreamName, opts.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("reposition consumer %s: %w", opts.Durable, err)
		}
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", opts.Durable, err)
	}
	return cons, nil
}

// ConsumeRaw is Consume without decoding: h sees the message as stored.
func (b *Bus) ConsumeRaw(ctx context.Context, opts ConsumerOptions, h RawHandler) (*Consumer, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	cons, err := b.EnsureConsumer(ctx, opts)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(ctx)
	c := &Consumer{cancel: cancel, durable: opts.Durable}
	log := b.log.With("consumer", opts.Durable)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if !c.begin() {
			return // stopped: the message is redelivered later
		}
		defer c.wg.Done()
		meta, err := msg.Metadata()
		if err != nil {
			log.Error("message without JetStream metadata", "err", err)
			return
		}
		b.settle(hctx, log, opts, msg, meta, h(hctx, msg, meta))
		consumerPending.WithLabelValues(opts.Durable).Set(float64(meta.NumPending))
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, nats.ErrConnectionClosed) {
			log.Warn("consume", "err", err)
		}
	}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("consume %s: %w", opts.Durable, err)
	}
	c.cc = cc
	return c, nil
}

// settle turns the handler's result into the message's ack.
func (b *Bus) settle(ctx context.Context, log *slog.Logger, opts ConsumerOptions, msg jetstream.Msg, meta *jetstream.MsgMetadata, herr error) {
	var err error
	switch {
	case herr == nil:
		err = msg.Ack()
	case errors.Is(herr, ErrPoison) || meta.NumDelivered >= uint64(opts.MaxDeliver):
		reason := herr.Error()
		if !errors.Is(herr, ErrPoison) {
			reason = fmt.Sprintf("gave up after %d deliveries: %s", meta.NumDelivered, reason)
		}
		log.Warn("terminating message", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "reason", reason)
		if dlErr := b.deadLetter(ctx, opts.Durable, msg, meta, reason); dlErr != nil {
			// Keep the message rather than lose it: retry later.
			log.Error("dead-letter failed; message will be redelivered", "err", dlErr)
			err = msg.NakWithDelay(backoff(opts.Backoff, meta.NumDelivered))
			break
		}
		err = msg.TermWithReason(truncate(reason, 256))
	default:
		delay := backoff(opts.Backoff, meta.NumDelivered)
		log.Warn("handler failed; retrying", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "attempt", meta.NumDelivered, "delay", delay, "err", herr)
		err = msg.NakWithDelay(delay)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		log.Error("ack", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "err", err)
	}
}

// DeadLetter publishes a copy of msg, with its headers and reason, to
// consumer durable's dead-letter subject, as Consume does for poison; for
// consumers that settle their messages themselves.
func (b *Bus) DeadLetter(ctx context.Context, durable string, msg jetstream.Msg, reason string) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	return b.deadLetter(ctx, durable, msg, meta, reason)
}

// deadLetter publishes a copy of msg, with its headers and the reason, to the
// consumer's dead-letter subject.
func (b *Bus) deadLetter(ctx context.Context, durable string, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string) error {
	return b.publishDeadLetter(ctx, durable, msg.Subject(), meta.Sequence.Stream, msg.Headers(), msg.Data(), reason)
}

// publishDeadLetter publishes the dead-letter copy of the message stored at
// seq. The copy's id is derived from the consumer and the sequence, so the
// same message dead-lettered twice (a retry, or the server's max-deliveries
// advisory after the consumer's own decision) is stored once.
func (b *Bus) publishDeadLetter(ctx context.Context, durable, subject string, seq uint64, headers nats.Header, data []byte, reason string) error {
	if strings.HasPrefix(subject, events.SubjectPrefix+"."+events.KindDeadLetter+".") {
		return nil // never dead-letter a dead letter: it would loop
	}
	h := nats.Header{}
	for k, v := range headers {
		if k != jetstream.MsgIDHeader {
			h[k] = v
		}
	}
	h.Set(HeaderDeadLetterReason, reason)
	h.Set(HeaderOriginalSubject, subject)
	h.Set(HeaderOriginalSequence, strconv.FormatUint(seq, 10))
	h.Set(HeaderConsumer, durable)
	h.Set(jetstream.MsgIDHeader, "deadletter:"+durable+":"+strconv.FormatUint(seq, 10))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := b.js.PublishMsg(pctx, &nats.Msg{Subject: DeadLetterSubject(durable), Header: h, Data: data})
	return err
}

func backoff(steps []time.Duration, attempt uint64) time.Duration {
	i := int(min(attempt, uint64(len(steps)))) - 1
	return steps[max(i, 0)]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Drain stops fetching, lets the handler finish what was delivered, and waits
// until the consumer has stopped or ctx ends.
func (c *Consumer) Drain(ctx context.Context) error {
	c.cc.Drain()
	select {
	case <-c.cc.Closed():
	case <-ctx.Done():
		c.cancel()
		c.halt()
		return fmt.Errorf("drain consumer %s: %w", c.durable, ctx.Err())
	}
	c.halt()
	c.cancel()
	return nil
}

// Stop stops at once: the running handler's context is cancelled and
// unacknowledged messages are redelivered later.
func (c *Consumer) Stop() {
	c.cancel()
	c.cc.Stop()
	c.halt()
	<-c.cc.Closed()
}
