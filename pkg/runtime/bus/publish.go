package bus

import (
	"context"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampartci/rampart/pkg/events"
)

// The CloudEvents distributed-tracing extension attributes.
const (
	extTraceParent = "traceparent"
	extTraceState  = "tracestate"
)

var traceContext = propagation.TraceContext{}

// MaxSubject bounds the subject of a published event. The server closes a
// connection whose protocol line (which carries the subject) passes 4 KiB,
// and with it every consumer sharing the connection; no application name
// is that long, so the bus refuses such an event instead.
const MaxSubject = 512

var (
	// ErrInvalidSubject: the event's subject cannot be published.
	ErrInvalidSubject = errors.New("event subject cannot be published")
	// ErrTooLarge: the event is over the server's maximum payload.
	ErrTooLarge = errors.New("event larger than the bus accepts")
)

// Publish validates ev and publishes it on its subject (events.SubjectOf).
func (b *Bus) Publish(ctx context.Context, ev cloudevents.Event) (*jetstream.PubAck, error) {
	return b.PublishTo(ctx, events.SubjectOf(ev), ev)
}

// PublishTo validates ev and publishes it on subject in binary mode. The
// message id is the event id, so JetStream drops a repeat within its duplicate
// window; the traceparent extension carries the current span. Without a span
// in ctx, an event that already names a traceparent (set by work done later
// on behalf of a release, see TraceParent) is published in that trace.
func (b *Bus) PublishTo(ctx context.Context, subject string, ev cloudevents.Event) (*jetstream.PubAck, error) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = ExtractTrace(ctx, ev)
	}
	ctx, span := b.tracer.Start(ctx, "publish "+events.KindOf(ev.Type()), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", subject), attribute.String("cloudevents.event_id", ev.ID()),
			attribute.String("cloudevents.event_type", ev.Type())))
	defer span.End()

	ev = ev.Clone()
	InjectTrace(ctx, &ev)
	if err := b.schemas.Validate(ev); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("publish %s: %w", ev.ID(), err)
	}
	msg, err := events.ToMsg(subject, ev)
	if err != nil {
		return nil, err
	}
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID())
	if err := b.publishable(msg); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("publish %s: %w", ev.ID(), err)
	}
	ack, err := b.js.PublishMsg(ctx, msg)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("publish %s to %s: %w", ev.ID(), subject, err)
	}
	return ack, nil
}

// InjectTrace sets ev's traceparent (and tracestate) extensions from the span
// in ctx; without a valid span it leaves ev as it is.
func InjectTrace(ctx context.Context, ev *cloudevents.Event) {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	if tp := carrier.Get(extTraceParent); tp != "" {
		ev.SetExtension(extTraceParent, tp)
		if ts := carrier.Get(extTraceState); ts != "" {
			ev.SetExtension(extTraceState, ts)
		}
	}
}

// TraceParent is the W3C traceparent of the span in ctx, "" without one: what
// work that outlives a delivery keeps, to publish its events later in the
// delivery's trace (SetTraceParent).
func TraceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	return carrier.Get(extTraceParent)
}

// SetTraceParent sets ev's traceparent extension to tp, when tp is set.
func SetTraceParent(ev *cloudevents.Event, tp string) {
	if tp != "" {
		ev.SetExtension(extTraceParent, tp)
	}
}

// ExtractTrace returns ctx carrying the remote span named by ev's traceparent.
func ExtractTrace(ctx context.Context, ev cloudevents.Event) context.Context {
	carrier := propagation.MapCarrier{}
	for _, name := range []string{extTraceParent, extTraceState} {
		if v, ok := ev.Extensions()[name].(string); ok {
			carrier.Set(name, v)
		}
	}
	return traceContext.Extract(ctx, carrier)
}

// publishable refuses, before anything is sent, a message the server would
// reject or answer by closing the connection.
func (b *Bus) publishable(msg *nats.Msg) error {
	if len(msg.Subject) > MaxSubject {
		return fmt.Errorf("%w: subject is %d bytes, limit %d", ErrInvalidSubject, len(msg.Subject), MaxSubject)
	}
	// The header block as the client writes it: "NATS/1.0\r\n", a
	// "Name: value\r\n" line per value, and a closing "\r\n".
	size := len("NATS/1.0\r\n\r\n") + len(msg.Data)
	for name, values := range msg.Header {
		for _, v := range values {
			size += len(name) + len(": \r\n") + len(v)
		}
	}
	if limit := b.nc.MaxPayload(); limit > 0 && int64(size) > limit {
		return fmt.Errorf("%w: %d bytes with headers, limit %d", ErrTooLarge, size, limit)
	}
	return nil
}
