package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func commit(t testing.TB, id, app string) cloudevents.Event {
	t.Helper()
	ev, err := events.NewCommit(events.Meta{ID: id, Source: "/test", App: app, ChainID: "c-" + id},
		events.Commit{Repository: "github.com/acme/" + app, SHA: "sha-" + id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// collector records what a handler saw, safely across goroutines.
type collector struct {
	mu  sync.Mutex
	ids []string
}

func (c *collector) add(id string) { c.mu.Lock(); c.ids = append(c.ids, id); c.mu.Unlock() }
func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

func waitLen(t *testing.T, c *collector, n int) []string {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := len(c.snapshot()); got < n {
			return fmt.Errorf("handled %d of %d", got, n)
		}
		return nil
	})
	return c.snapshot()
}

func streamMsgs(t *testing.T, b *bus.Bus, subject string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func TestPublishConsumeCarriesTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(sdktrace.NewTracerProvider()) })

	b := natstest.Bus(t, natstest.Server(t, ""))
	var got collector
	traces := make(chan string, 1)
	c, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "t", FilterSubjects: []string{"rampart.commit.>"}},
		func(ctx context.Context, d bus.Delivery) error {
			if _, err := events.CommitOf(d.Event); err != nil {
				return err
			}
			traces <- d.Event.Extensions()["traceparent"].(string)
			got.add(d.Event.ID())
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	ctx, span := tp.Tracer("test").Start(t.Context(), "webhook")
	ack, err := b.Publish(ctx, commit(t, "e1", "shop"))
	span.End()
	if err != nil || ack.Stream != bus.StreamName {
		t.Fatalf("publish: %v %+v", err, ack)
	}
	waitLen(t, &got, 1)
	tpHeader := <-traces
	want := span.SpanContext().TraceID().String()
	if len(tpHeader) < 35 || tpHeader[3:35] != want {
		t.Fatalf("traceparent %q does not continue trace %s", tpHeader, want)
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, s := range rec.Ended() {
			if s.Name() == "consume commit" && s.SpanContext().TraceID().String() == want {
				return nil
			}
		}
		return errors.New("no consume span in the publisher's trace")
	})
}

func TestDuplicatePublishIsStoredOnce(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	ev := commit(t, "dup", "shop")
	first, err := b.Publish(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Publish(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !second.Duplicate || second.Sequence != first.Sequence {
		t.Fatalf("first %+v second %+v", first, second)
	}
	if n := streamMsgs(t, b, "rampart.commit.shop"); n != 1 {
		t.Fatalf("stream holds %d copies", n)
	}
}

func TestPublishRefusesInvalidEvent(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	ev := commit(t, "bad", "shop")
	ev.SetID("mismatch")
	if _, err := b.Publish(t.Context(), ev); !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("Publish = %v, want ErrInvalid", err)
	}
	if n := streamMsgs(t, b, "rampart.>"); n != 0 {
		t.Fatalf("an invalid event was stored (%d messages)", n)
	}
}

func TestPoisonIsTerminatedAndDeadLettered(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	var got collector
	c, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "svc", FilterSubjects: []string{"rampart.commit.>"}},
		func(ctx context.Context, d bus.Delivery) error { got.add(d.Event.ID()); return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	js := b.JetStream()
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "rampart.commit.shop", Data: []byte("not an event")}); err != nil {
		t.Fatal(err)
	}
	// A future major version must be refused, not guessed at.
	future := commit(t, "future", "shop")
	future.SetType("dev.cdevents.change.merged.1.0.0")
	msg, err := events.ToMsg("rampart.commit.shop", future)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), commit(t, "after", "shop")); err != nil {
		t.Fatal(err)
	}
	if ids := waitLen(t, &got, 1); ids[0] != "after" {
		t.Fatalf("handler saw %v", ids)
	}

	dl, err := js.OrderedConsumer(t.Context(), bus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.DeadLetterSubject("svc")}})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for len(reasons) < 2 {
		m, err := dl.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("dead letters: %v (have %v)", err, reasons)
		}
		reasons[string(m.Data())] = m.Headers().Get(bus.HeaderDeadLetterReason)
		if m.Headers().Get(bus.HeaderOriginalSubject) != "rampart.commit.shop" {
			t.Fatalf("dead letter lost its subject: %v", m.Headers())
		}
	}
	if r := reasons["not an event"]; !strings.Contains(r, "no ce-specversion header") {
		t.Fatalf("reason for garbage: %q", r)
	}
	var sawVersion bool
	for _, r := range reasons {
		sawVersion = sawVersion || strings.Contains(r, "unsupported schema version: dev.cdevents.change.merged is version 1.0.0")
	}
	if !sawVersion {
		t.Fatalf("no dead letter names the unsupported version: %v", reasons)
	}
}

func TestTransientFailureIsRetriedWithBackoff(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	var attempts atomic.Int64
	var done collector
	c, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "flaky", FilterSubjects: []string{"rampart.>"},
		Backoff: []time.Duration{20 * time.Millisecond}},
		func(ctx context.Context, d bus.Delivery) error {
			if n := attempts.Add(1); n < 3 {
				return fmt.Errorf("downstream unavailable (attempt %d)", d.Attempt)
			}
			done.add(fmt.Sprint(d.Attempt))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := b.Publish(t.Context(), commit(t, "retry", "shop")); err != nil {
		t.Fatal(err)
	}
	if got := waitLen(t, &done, 1); got[0] != "3" {
		t.Fatalf("acked on attempt %s, want 3", got[0])
	}
	if n := streamMsgs(t, b, bus.DeadLetterSubject("flaky")); n != 0 {
		t.Fatalf("a retried message was dead-lettered")
	}
}

func TestGivingUpDeadLetters(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	var attempts atomic.Int64
	c, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "broken", FilterSubjects: []string{"rampart.commit.>"},
		MaxDeliver: 3, Backoff: []time.Duration{10 * time.Millisecond}},
		func(ctx context.Context, d bus.Delivery) error {
			attempts.Add(1)
			return errors.New("always fails")
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := b.Publish(t.Context(), commit(t, "doomed", "shop")); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := streamMsgs(t, b, bus.DeadLetterSubject("broken")); n != 1 {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d attempts, want MaxDeliver=3", n)
	}
}

func TestDrainFinishesInFlight(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	started := make(chan struct{})
	release := make(chan struct{})
	var acked collector
	c, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "slow", FilterSubjects: []string{"rampart.>"}},
		func(ctx context.Context, d bus.Delivery) error {
			close(started)
			<-release
			acked.add(d.Event.ID())
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), commit(t, "inflight", "shop")); err != nil {
		t.Fatal(err)
	}
	<-started
	drained := make(chan error, 1)
	go func() { drained <- c.Drain(context.Background()) }()
	close(release)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	cons, err := b.JetStream().Consumer(t.Context(), bus.StreamName, "slow")
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		info, err := cons.Info(t.Context())
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != 1 {
			return fmt.Errorf("ack floor %d", info.AckFloor.Stream)
		}
		return nil
	})
}

// A message whose last allowed delivery times out without any decision (a
// hung handler, a dead process) is dead-lettered from the server's advisory.
func TestMaxDeliveriesAdvisoryDeadLetters(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	if err := b.RecordMaxDeliveries(t.Context()); err != nil {
		t.Fatal(err)
	}
	cons, err := b.EnsureConsumer(t.Context(), bus.ConsumerOptions{Durable: "hung", FilterSubjects: []string{"rampart.commit.>"},
		MaxDeliver: 1, AckWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), commit(t, "lost", "shop")); err != nil {
		t.Fatal(err)
	}
	// Take the message and never decide.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := streamMsgs(t, b, bus.DeadLetterSubject("hung")); n != 1 {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})
}

// Work that outlasts AckWait is not redelivered while the handler keeps the
// delivery alive: the server sees one delivery, then the ack.
func TestKeepAliveHoldsLongWork(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	const ackWait = 300 * time.Millisecond
	var handled collector
	c, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "long", FilterSubjects: []string{"rampart.>"}, AckWait: ackWait},
		func(ctx context.Context, d bus.Delivery) error {
			stop := d.KeepAlive(ctx)
			defer stop()
			// The work under test: three times AckWait.
			select {
			case <-time.After(3 * ackWait):
			case <-ctx.Done():
				return ctx.Err()
			}
			handled.add(fmt.Sprint(d.Attempt))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := b.Publish(t.Context(), commit(t, "long", "shop")); err != nil {
		t.Fatal(err)
	}
	if got := waitLen(t, &handled, 1); got[0] != "1" {
		t.Fatalf("handled on attempt %s, want 1", got[0])
	}
	cons, err := b.JetStream().Consumer(t.Context(), bus.StreamName, "long")
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		info, err := cons.Info(t.Context())
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != 1 {
			return fmt.Errorf("ack floor %d", info.AckFloor.Stream)
		}
		if info.Delivered.Consumer != 1 || info.NumRedelivered != 0 {
			return fmt.Errorf("delivered %d times, %d redelivered; want once", info.Delivered.Consumer, info.NumRedelivered)
		}
		return nil
	})
}

// One event with an absurd application name, or over the server's maximum
// payload, is refused before it is sent, and the shared connection stays
// up for everything else.
func TestPublishRefusesWhatWouldBreakTheConnection(t *testing.T) {
	b := natstest.Bus(t, natstest.Server(t, ""))
	long := commit(t, "long-app", strings.Repeat("a", 5000))
	if _, err := b.Publish(t.Context(), long); !errors.Is(err, bus.ErrInvalidSubject) || !strings.Contains(err.Error(), "limit 512") {
		t.Fatalf("5,000-character app: err = %v, want ErrInvalidSubject naming the limit", err)
	}
	big, err := events.NewCommit(events.Meta{ID: "big", Source: "/test", App: "shop", ChainID: "c-big"},
		events.Commit{Repository: "github.com/acme/shop", SHA: "sha-big", Message: strings.Repeat("m", int(b.Conn().MaxPayload()))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), big); !errors.Is(err, bus.ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("limit %d", b.Conn().MaxPayload())) {
		t.Fatalf("oversize event: err = %v, want ErrTooLarge naming the limit", err)
	}
	if !b.Conn().IsConnected() {
		t.Fatalf("connection is %s after the refusals", b.Conn().Status())
	}
	if _, err := b.Publish(t.Context(), commit(t, "after", "shop")); err != nil {
		t.Fatalf("publish after the refusals: %v", err)
	}
}
