package demo

import (
	"context"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Seen is one event on the bus and when the demo saw it.
type Seen struct {
	At      time.Time
	Subject string
	Event   cloudevents.Event
}

// recorder follows the RAMPART stream from its start and keeps every event,
// so the demo can print a timeline and wait for what it expects.
type recorder struct {
	mu     sync.Mutex
	seen   []Seen
	notify chan struct{} // closed and replaced on every new event
	onSeen func(Seen)
}

func newRecorder(onSeen func(Seen)) *recorder {
	return &recorder{notify: make(chan struct{}), onSeen: onSeen}
}

func (r *recorder) run(ctx context.Context, b *bus.Bus) error {
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		ev, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			return // a dead letter's raw copy: the timeline shows events
		}
		s := Seen{At: time.Now(), Subject: msg.Subject(), Event: ev}
		if r.onSeen != nil {
			r.onSeen(s)
		}
		r.mu.Lock()
		r.seen = append(r.seen, s)
		close(r.notify)
		r.notify = make(chan struct{})
		r.mu.Unlock()
	})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		cc.Stop()
	}()
	return nil
}

// wait returns the first event, at or after position from, that match
// accepts, and its position.
func (r *recorder) wait(ctx context.Context, timeout time.Duration, from int, match func(Seen) bool) (Seen, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.seen); i++ {
			if match(r.seen[i]) {
				s := r.seen[i]
				r.mu.Unlock()
				return s, i, nil
			}
		}
		from = len(r.seen)
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return Seen{}, 0, ErrTimeout
		case <-ctx.Done():
			return Seen{}, 0, ctx.Err()
		}
	}
}

// count is how many events match.
func (r *recorder) count(match func(Seen) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.seen {
		if match(s) {
			n++
		}
	}
	return n
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// ofKind matches events of a kind (events.KindRollback, ...).
func ofKind(kind string) func(Seen) bool {
	return func(s Seen) bool { return events.KindOf(s.Event.Type()) == kind }
}
