package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// sink is where a replay re-publishes events.
type sink interface {
	// send publishes ev, read from subject at sequence seq.
	send(ctx context.Context, subject string, seq uint64, ev cloudevents.Event, st *Stats) error
	// flush waits until every copy sent is stored (or delivered).
	flush(ctx context.Context, st *Stats) error
}

// openSink picks where copies under prefix go, and names it.
func openSink(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, prefix string, notice func(string)) (sink, string, error) {
	if prefix == events.SubjectPrefix {
		b, err := bus.New(nc, nil)
		if err != nil {
			return nil, "", err
		}
		return liveSink{bus: b}, fmt.Sprintf("the live subjects %s.> (stream %s)", events.SubjectPrefix, bus.StreamName), nil
	}
	dest := prefix + ".>"
	if strings.HasPrefix(dest, Prefix+".") {
		if err := ensureStream(ctx, js); err != nil {
			return nil, "", err
		}
	}
	name, err := js.StreamNameBySubject(ctx, dest)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		notice(fmt.Sprintf("no stream captures %s: the copies go to core NATS subscribers only", dest))
		return &coreSink{nc: nc, prefix: prefix}, dest + " (core NATS)", nil
	case err != nil:
		return nil, "", fmt.Errorf("finding the stream for %s: %w", dest, err)
	}
	return &streamSink{js: js, prefix: prefix}, fmt.Sprintf("%s (stream %s)", dest, name), nil
}

// ensureStream creates the REPLAY stream unless it exists; an existing
// one is left as its operator configured it.
func ensureStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.Stream(ctx, Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("opening stream %s: %w", Stream, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "Copies of Rampart events re-published by rampart replay, under replay.<time>.>",
		Subjects:    []string{Prefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      maxAge,
		Duplicates:  2 * time.Minute,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("creating stream %s: %w", Stream, err)
	}
	return nil
}

// liveSink re-publishes onto the live subjects through the bus: validated,
// Nats-Msg-Id = event id, so JetStream drops what is still in its duplicate
// window and the ledger records an event once in any case.
type liveSink struct{ bus *bus.Bus }

func (s liveSink) send(ctx context.Context, subject string, _ uint64, ev cloudevents.Event, st *Stats) error {
	ack, err := s.bus.PublishTo(ctx, subject, ev)
	if err != nil {
		return err
	}
	if ack.Duplicate {
		st.Duplicates++
	}
	return nil
}

func (liveSink) flush(context.Context, *Stats) error { return nil }

// copyMsg is the binary-mode copy of ev under prefix, marked as a replay.
func copyMsg(prefix, subject string, seq uint64, ev cloudevents.Event) (*nats.Msg, error) {
	msg, err := events.ToMsg(Subject(prefix, subject), ev)
	if err != nil {
		return nil, err
	}
	msg.Header.Set(HeaderOf, subject)
	msg.Header.Set(HeaderSequence, strconv.FormatUint(seq, 10))
	return msg, nil
}

// streamSink publishes copies into the stream that captures the prefix,
// asynchronously with a bounded window, checking every acknowledgement.
type streamSink struct {
	js      jetstream.JetStream
	prefix  string
	pending []jetstream.PubAckFuture
}

func (s *streamSink) send(ctx context.Context, subject string, seq uint64, ev cloudevents.Event, st *Stats) error {
	msg, err := copyMsg(s.prefix, subject, seq, ev)
	if err != nil {
		return err
	}
	// The duplicate window is the stream's, across prefixes: the id names
	// this replay's copy, so a second replay is not taken for this one.
	msg.Header.Set(jetstream.MsgIDHeader, s.prefix+" "+ev.Source()+" "+ev.ID())
	f, err := s.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("publishing %s to %s: %w", ev.ID(), msg.Subject, err)
	}
	s.pending = append(s.pending, f)
	if len(s.pending) >= window {
		return s.wait(ctx, len(s.pending)/2, st)
	}
	return nil
}

// wait waits for the oldest n acknowledgements.
func (s *streamSink) wait(ctx context.Context, n int, st *Stats) error {
	for _, f := range s.pending[:n] {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				st.Duplicates++
			}
		case err := <-f.Err():
			return fmt.Errorf("publishing to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return nil
}

func (s *streamSink) flush(ctx context.Context, st *Stats) error {
	return s.wait(ctx, len(s.pending), st)
}

// coreSink publishes copies on core NATS, for a prefix no stream captures.
type coreSink struct {
	nc     *nats.Conn
	prefix string
}

func (s *coreSink) send(_ context.Context, subject string, seq uint64, ev cloudevents.Event, _ *Stats) error {
	msg, err := copyMsg(s.prefix, subject, seq, ev)
	if err != nil {
		return err
	}
	if err := s.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("publishing %s to %s: %w", ev.ID(), msg.Subject, err)
	}
	return nil
}

func (s *coreSink) flush(ctx context.Context, _ *Stats) error {
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("flushing to NATS: %w", err)
	}
	return nil
}
