package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Tracker keeps a Set current from the RAMPART stream and reports when a
// canary starts or ends.
//
// What is live is kept in memory only. The durable consumer alone could not
// rebuild it: it redelivers only what was not acknowledged, and a canary
// step is acknowledged as soon as it is applied, so after a restart the
// durable would resume after the step of a canary that is still live. So
// Tracker.Start first reads the RAMPART stream's last canary-step, rollback and
// release event of every application (an ordered consumer delivering the
// last message per subject), which is exactly what decides what is live
// now, and only then resumes the durable consumer. Every application's set
// remembers the stream sequence of the last event applied, so the durable's
// backlog of events already seen in that snapshot (delivered, not yet acked
// when the old process died) changes nothing, and a brand-new durable that
// starts at the beginning of the stream does not replay old canaries.
//
// What a restart costs: the scrape provider's baseline is taken again when
// the restarted watcher opens the window, so requests served between the
// step's start and the restart are not in the ratio (the old process judged
// them every interval); the PromQL provider's window starts at the step
// event's time and loses nothing. Anomaly ids are deterministic
// (anomaly:<rollout>:<rule>), so a breach found again after a restart is the
// same event: JetStream drops it within its duplicate window and the
// deployer acts on an anomaly once in any case.
//
// Replicas: the durable consumer is shared by the processes that use it, so
// each would see only some events. Run one watcher per bus (it is cheap), or
// give each replica its own durable name.
type Tracker struct {
	set      *Set
	bus      *bus.Bus
	consumer bus.ConsumerOptions
	onChange func(Change, Canary)
	log      *slog.Logger

	cons  *bus.Consumer
	ready atomic.Bool
}

// NewTracker returns a tracker of set that reads the stream through b and
// consumes the durable consumer opts (canary-step, rollback and release
// subjects). onChange is called, in stream order, with every Started or
// Ended change; it may block (a replaced analysis finishing).
func NewTracker(set *Set, b *bus.Bus, opts bus.ConsumerOptions, onChange func(Change, Canary), log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{set: set, bus: b, consumer: opts, onChange: onChange, log: log}
}

// Start rebuilds the set from the stream, then consumes the durable. The
// consumer outlives ctx; Stop drains it.
func (t *Tracker) Start(ctx context.Context) error {
	n, err := t.rebuild(ctx)
	if err != nil {
		return err
	}
	t.log.Info("live state rebuilt from the stream", "events", n, "live_canaries", len(t.set.Canaries()))
	t.cons, err = t.bus.Consume(context.WithoutCancel(ctx), t.consumer, t.handle)
	if err != nil {
		return err
	}
	t.ready.Store(true)
	return nil
}

// Stop drains the consumer.
func (t *Tracker) Stop(ctx context.Context) error {
	t.ready.Store(false)
	if t.cons == nil {
		return nil
	}
	return t.cons.Drain(ctx)
}

// Ready reports whether the set is rebuilt and the consumer runs.
func (t *Tracker) Ready() error {
	if !t.ready.Load() {
		return errors.New("rebuilding live canaries from the stream")
	}
	return nil
}

// rebuild applies the last canary-step, rollback and release event of every
// application, in stream order.
func (t *Tracker) rebuild(ctx context.Context) (int, error) {
	js := t.bus.JetStream()
	cons, err := js.OrderedConsumer(ctx, bus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: t.consumer.FilterSubjects,
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild live state: %w", err)
	}
	pending := cons.CachedInfo().NumPending
	type item struct {
		seq uint64
		msg jetstream.Msg
	}
	var items []item
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, fmt.Errorf("rebuild live state: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return 0, fmt.Errorf("rebuild live state: %w", err)
			}
			items = append(items, item{meta.Sequence.Stream, msg})
			pending = meta.NumPending
		}
		if err := batch.Error(); err != nil {
			return 0, fmt.Errorf("rebuild live state: %w", err)
		}
		if got == 0 {
			return 0, errors.New("rebuild live state: the stream delivered nothing before the deadline")
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	for _, it := range items {
		ev, err := events.FromMsg(it.msg.Headers(), it.msg.Data())
		if err == nil {
			err = t.apply(ev, it.seq)
		}
		if err != nil {
			// The durable consumer dead-letters it; here it is skipped.
			t.log.Warn("rebuild: skipping an unreadable event", "subject", it.msg.Subject(), "seq", it.seq, "err", err)
		}
	}
	return len(items), nil
}

// handle is the durable consumer's handler: an event that cannot be read is
// poison; everything else is applied in memory and acknowledged.
func (t *Tracker) handle(_ context.Context, d bus.Delivery) error {
	if err := t.apply(d.Event, d.StreamSequence); err != nil {
		return bus.Poison(err)
	}
	return nil
}

// apply updates the set and reports a canary started or ended.
func (t *Tracker) apply(ev cloudevents.Event, seq uint64) error {
	change, c, err := t.set.Apply(ev, seq)
	if err != nil {
		return err
	}
	log := t.log.With("app", c.App, "rollout", c.RolloutID)
	switch change {
	case Started:
		log.Info("canary live", "step", c.Step, "weight", c.Weight, "artifact", c.ArtifactID)
	case Ended:
		log.Info("canary no longer live", "by", ev.Type())
	default:
		return nil
	}
	t.onChange(change, c)
	return nil
}
