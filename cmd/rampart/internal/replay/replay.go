// Package replay reads the events the RAMPART stream stored in a time window
// and publishes them again under a prefix that replaces their leading
// "rampart" token: by default replay.<time> into the REPLAY stream, where no
// live consumer sees them. The rules (where copies go, what is never
// replayed, where a window ends) are docs/decisions/0002-replay.md.
package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Replayed copies: see docs/decisions/0002-replay.md.
const (
	// Stream keeps the copies a replay publishes under replay.>, so they
	// can be read after the replay has finished.
	Stream = "REPLAY"
	// Prefix is the first token of the default prefix, replay.<UTC time of
	// the replay>.
	Prefix = "replay"
	// maxAge bounds how long the REPLAY stream keeps copies.
	maxAge = 7 * 24 * time.Hour
	// Headers added to a replayed copy.
	HeaderOf       = "Rampart-Replay-Of"       // original subject
	HeaderSequence = "Rampart-Replay-Sequence" // original RAMPART sequence
)

// window bounds the copies published but not yet acknowledged.
const window = 256

// idle bounds the wait for the next stored message of a replay; the messages
// are already stored, so a long wait means the stream changed.
var idle = 30 * time.Second

// ErrLivePrefix: a prefix inside rampart.> other than "rampart" itself. Its
// copies would be stored in RAMPART, where live consumers would take them
// for new events.
var ErrLivePrefix = errors.New("prefix inside the live subjects")

// Options says what to replay and where.
type Options struct {
	// Since and Until bound the window by stored time; a zero Until means
	// up to the last event stored when the replay starts.
	Since, Until time.Time
	// Subject filters the events, inside rampart.> (NATS wildcards);
	// empty means rampart.>.
	Subject string
	// To is the prefix that replaces "rampart": a literal subject outside
	// rampart.> (checked by CheckPrefix), or "rampart" for the live
	// subjects. Empty means DefaultPrefix of now.
	To string
	// DryRun publishes and creates nothing; each event that would be
	// replayed is handed to Visit.
	DryRun bool
	Visit  func(jetstream.Msg) error
	// Notice, when set, is told what the operator should know as it
	// happens: a message skipped and why, copies that no stream
	// keeps.
	Notice func(string)
	// Progress, when set, is told after each message read how many of the
	// window's messages were read and how many there are at most.
	Progress func(read, total uint64)
}

// Stats is what a replay did.
type Stats struct {
	Events      int // read and re-published (or visited, in a dry run)
	Duplicates  int // dropped by the destination stream's duplicate window
	DeadLetters int // skipped: dead letters are not replayed
	Invalid     int // skipped: not a valid event
	// Destination names where the copies went: the subjects and the stream.
	Destination string
	Elapsed     time.Duration
}

// DefaultPrefix is replay.<UTC time to the millisecond>, e.g.
// replay.20261126T172618_123Z: one token, so a replay's copies are
// replay.<time>.<kind>.<app>.
func DefaultPrefix(now time.Time) string {
	return Prefix + "." + strings.Replace(now.UTC().Format("20060102T150405.000Z"), ".", "_", 1)
}

// CheckPrefix refuses a prefix under rampart.> other than "rampart" itself
// (ErrLivePrefix): those copies would reach the live consumers by the back
// door. The prefix's subject syntax is the caller's to check.
func CheckPrefix(p string) error {
	if p != events.SubjectPrefix && strings.HasPrefix(p, events.SubjectPrefix+".") {
		return fmt.Errorf("%w: %q", ErrLivePrefix, p)
	}
	return nil
}

// Subject is subject with its leading "rampart" token replaced by prefix.
func Subject(prefix, subject string) string {
	return prefix + strings.TrimPrefix(subject, events.SubjectPrefix)
}

// Run replays the window of src (the RAMPART stream) described by o, over
// nc. Dead letters and invalid messages are counted and skipped.
func Run(ctx context.Context, nc *nats.Conn, src jetstream.Stream, o Options) (st Stats, err error) {
	if o.Subject == "" {
		o.Subject = events.SubjectPrefix + ".>"
	}
	if o.To == "" {
		o.To = DefaultPrefix(time.Now())
	}
	if err = CheckPrefix(o.To); err != nil {
		return st, err
	}
	if o.Notice == nil {
		o.Notice = func(string) {}
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		return st, err
	}
	info, err := src.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("reading stream %s info: %w", bus.StreamName, err)
	}
	last := info.State.LastSeq // the end of the replay, unless Until comes first

	var s sink
	st.Destination = o.To + ".>"
	if !o.DryRun {
		if s, st.Destination, err = openSink(ctx, nc, js, o.To, o.Notice); err != nil {
			return st, err
		}
	}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	if info.State.Msgs == 0 {
		return st, nil
	}
	if err := readWindow(ctx, src, o, last, &st, s); err != nil {
		return st, err
	}
	if s != nil {
		if err := s.flush(ctx, &st); err != nil {
			return st, fmt.Errorf("replayed %d events, but: %w", st.Events, err)
		}
	}
	return st, nil
}
