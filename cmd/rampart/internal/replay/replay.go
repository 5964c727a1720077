package cli

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/eventline"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Replayed copies: see docs/decisions/0002-replay.md.
const (
	// ReplayStream keeps the copies a replay publishes under replay.>, so
	// they can be read after the replay has finished.
	ReplayStream = "REPLAY"
	// ReplayPrefix is the first token of the default replay prefix,
	// replay.<UTC time of the replay>.
	ReplayPrefix = "replay"
	// replayMaxAge bounds how long the REPLAY stream keeps copies.
	replayMaxAge = 7 * 24 * time.Hour
	// Headers added to a replayed copy.
	HeaderReplayOf       = "Rampart-Replay-Of"       // original subject
	HeaderReplaySequence = "Rampart-Replay-Sequence" // original RAMPART sequence
)

// replayIdle bounds the wait for the next stored message of a replay; the
// messages are already stored, so a long wait means the stream changed.
var replayIdle = 30 * time.Second

func init() {
	register("replay", "re-publish (or print) the events of a time window under a replay prefix", runReplay)
}

type replayOptions struct {
	natsURL      string
	since, until time.Time
	subject      string
	to           string
	dryRun       bool
}

func runReplay(ctx context.Context, e *env, args []string) error {
	now := time.Now()
	fs := newFlags(e, "replay", "--since DURATION|TIME [--until DURATION|TIME] [--subject S] [--to PREFIX] [--dry-run]\n\n"+
		"Reads the events the RAMPART stream stored in a time window, in order, and\n"+
		"re-publishes each under a prefix that replaces its leading \"rampart\" token:\n"+
		"by default replay.<now>, kept in the REPLAY stream and never seen by live\n"+
		"consumers. --to rampart re-publishes onto the live subjects (the ledger records\n"+
		"an event once, whatever is re-published). Dead letters are not replayed.\n"+
		"DURATION is before now (90s, 2h, 7d); TIME is RFC 3339 or a date (2026-11-26, UTC).")
	natsURL := natsURLFlag(fs)
	sinceArg := fs.String("since", "", "replay events stored since `DURATION|TIME` (required)")
	untilArg := fs.String("until", "", "replay events stored before `DURATION|TIME` (default: up to the last event stored when the replay starts)")
	subject := fs.String("subject", events.SubjectPrefix+".>", "replay only events on subjects matching `S` (NATS wildcards)")
	to := fs.String("to", "", "re-publish under `PREFIX` (default "+ReplayPrefix+".<UTC time>; \"rampart\" means the live subjects)")
	dryRun := fs.Bool("dry-run", false, "print the events instead of re-publishing them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	o := replayOptions{natsURL: *natsURL, subject: *subject, to: *to, dryRun: *dryRun}
	if *sinceArg == "" {
		return fmt.Errorf("%w: --since is required: a duration before now (90s, 2h, 7d) or a time (RFC 3339)", errUsage)
	}
	var err error
	if o.since, err = parseWhen("--since", *sinceArg, now); err != nil {
		return err
	}
	if o.since.After(now) {
		return fmt.Errorf("%w: --since %s is in the future", errUsage, o.since.UTC().Format(time.RFC3339))
	}
	if *untilArg != "" {
		if o.until, err = parseWhen("--until", *untilArg, now); err != nil {
			return err
		}
		if !o.until.After(o.since) {
			return fmt.Errorf("%w: --until %s is not after --since %s", errUsage,
				o.until.UTC().Format(time.RFC3339Nano), o.since.UTC().Format(time.RFC3339Nano))
		}
	}
	if err := checkEventSubject("--subject", o.subject); err != nil {
		return err
	}
	if o.to == "" {
		o.to = defaultReplayPrefix(now)
	}
	if err := checkReplayPrefix(o.to); err != nil {
		return err
	}
	return replay(ctx, e, o)
}

// defaultReplayPrefix is replay.<UTC time to the millisecond>, e.g.
// replay.20261126T172618_123Z: one token, so a replay's copies are
// replay.<time>.<kind>.<app>.
func defaultReplayPrefix(now time.Time) string {
	return ReplayPrefix + "." + strings.Replace(now.UTC().Format("20060102T150405.000Z"), ".", "_", 1)
}

// checkReplayPrefix accepts "rampart" (the live subjects) and any literal
// subject prefix outside rampart.>: a prefix under rampart.> would put the
// copies into the RAMPART stream, where live consumers would take them for
// new events.
func checkReplayPrefix(p string) error {
	if err := checkSubject(p, false); err != nil {
		return fmt.Errorf("%w: --to %q: %v", errUsage, p, err)
	}
	if p != events.SubjectPrefix && strings.HasPrefix(p, events.SubjectPrefix+".") {
		return fmt.Errorf("%w: --to %q is inside %s.>, where live consumers would take the copies for new events; use --to %s to re-publish onto the live subjects, or a prefix outside %s.>",
			errUsage, p, events.SubjectPrefix, events.SubjectPrefix, events.SubjectPrefix)
	}
	return nil
}

// replaySubject is subject with its leading "rampart" token replaced by prefix.
func replaySubject(prefix, subject string) string {
	return prefix + strings.TrimPrefix(subject, events.SubjectPrefix)
}

// replayStats counts what a replay did.
type replayStats struct {
	events      int // read and re-published (or printed)
	duplicates  int // dropped by the destination stream's duplicate window
	deadLetters int // skipped: dead letters are not replayed
	invalid     int // skipped: not a valid event
}

func replay(ctx context.Context, e *env, o replayOptions) error {
	nc, err := connectNATS(o.natsURL, "replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(replayWindow))
	if err != nil {
		return err
	}
	s, err := openEventStream(ctx, js, o.natsURL)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading stream %s info: %w", bus.StreamName, err)
	}
	last := info.State.LastSeq // the end of the replay, unless --until comes first

	var sink replaySink
	dest := o.to + ".>"
	if !o.dryRun {
		if sink, dest, err = openReplaySink(ctx, e, nc, js, o.to); err != nil {
			return err
		}
	}

	window := "since " + o.since.UTC().Format(time.RFC3339Nano)
	if !o.until.IsZero() {
		window += " until " + o.until.UTC().Format(time.RFC3339Nano)
	}
	start := time.Now()
	var st replayStats
	if info.State.Msgs > 0 {
		if err := readWindow(ctx, e, s, o, last, &st, sink); err != nil {
			return err
		}
		if sink != nil {
			if err := sink.flush(ctx, &st); err != nil {
				return fmt.Errorf("replayed %d events, but: %w", st.events, err)
			}
		}
	}
	elapsed := time.Since(start)
	rate := float64(st.events) / max(elapsed.Seconds(), 1e-9)
	verb := "replayed"
	if o.dryRun {
		verb = "dry run: would replay"
	}
	fmt.Fprintf(e.stdout, "%s %s from %s %s to %s in %s (%.0f events/s)", verb, nouns(st.events, "event", "events"), o.subject, window, dest,
		elapsed.Round(time.Millisecond), rate)
	var notes []string
	if st.duplicates > 0 {
		notes = append(notes, fmt.Sprintf("%d already there, dropped as duplicates", st.duplicates))
	}
	if st.deadLetters > 0 {
		notes = append(notes, nouns(st.deadLetters, "dead letter", "dead letters")+" skipped")
	}
	if st.invalid > 0 {
		notes = append(notes, nouns(st.invalid, "invalid message", "invalid messages")+" skipped")
	}
	if len(notes) > 0 {
		fmt.Fprintf(e.stdout, "; %s", strings.Join(notes, ", "))
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// readWindow reads the stored messages on o.subject from o.since, in stream
// order, up to o.until or to sequence last, whichever comes first, and hands
// each event to sink (or prints it when sink is nil).
func readWindow(ctx context.Context, e *env, s jetstream.Stream, o replayOptions, last uint64, st *replayStats, sink replaySink) error {
	since := o.since
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{o.subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayWindow))
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	defer it.Stop()
	ci := cons.CachedInfo()
	if ci == nil || ci.NumPending == 0 {
		return nil
	}
	total := ci.NumPending // an upper bound: --until may stop earlier
	nextProgress := time.Now().Add(time.Second)
	var prev uint64 // sequence of the last message handled
	for {
		nctx, cancel := context.WithTimeout(ctx, replayIdle)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped after %d events: %w", st.events, ctx.Err())
			}
			return fmt.Errorf("reading %s after %d events: %w", bus.StreamName, st.events, err)
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
		if seq > last || (!o.until.IsZero() && !meta.Timestamp.Before(o.until)) {
			return nil
		}
		if err := replayOne(ctx, e, msg, meta, st, sink); err != nil {
			return err
		}
		if seq == last || meta.NumPending == 0 {
			return nil
		}
		if now := time.Now(); now.After(nextProgress) {
			nextProgress = now.Add(time.Second)
			fmt.Fprintf(e.stderr, "replay: %d events, at #%d of #%d (at most %d to go)\n", st.events, seq, last, min(meta.NumPending, total))
		}
	}
}

func replayOne(ctx context.Context, e *env, msg jetstream.Msg, meta *jetstream.MsgMetadata, st *replayStats, sink replaySink) error {
	if eventline.IsDeadLetter(msg.Subject()) {
		st.deadLetters++
		return nil
	}
	ev, err := events.FromMsg(msg.Headers(), msg.Data())
	if err == nil {
		err = events.Validate(ev)
	}
	if err != nil {
		st.invalid++
		fmt.Fprintf(e.stderr, "replay: skipping #%d on %s: %v\n", meta.Sequence.Stream, msg.Subject(), err)
		return nil
	}
	if sink == nil {
		line, err := formatMsg(msg)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, line)
		st.events++
		return nil
	}
	if err := sink.send(ctx, msg.Subject(), meta.Sequence.Stream, ev, st); err != nil {
		return fmt.Errorf("replayed %d events, then #%d: %w", st.events, meta.Sequence.Stream, err)
	}
	st.events++
	return nil
}

// replayWindow bounds the copies published but not yet acknowledged, and the
// messages read ahead.
const replayWindow = 256

// replaySink is where a replay re-publishes events.
type replaySink interface {
	// send publishes ev, read from subject at sequence seq.
	send(ctx context.Context, subject string, seq uint64, ev cloudevents.Event, st *replayStats) error
	// flush waits until every copy sent is stored (or delivered).
	flush(ctx context.Context, st *replayStats) error
}

// openReplaySink picks where copies under prefix go, and names it.
func openReplaySink(ctx context.Context, e *env, nc *nats.Conn, js jetstream.JetStream, prefix string) (replaySink, string, error) {
	if prefix == events.SubjectPrefix {
		b, err := bus.New(nc, nil)
		if err != nil {
			return nil, "", err
		}
		return liveSink{bus: b}, fmt.Sprintf("the live subjects %s.> (stream %s)", events.SubjectPrefix, bus.StreamName), nil
	}
	dest := prefix + ".>"
	if strings.HasPrefix(dest, ReplayPrefix+".") {
		if err := ensureReplayStream(ctx, js); err != nil {
			return nil, "", err
		}
	}
	name, err := js.StreamNameBySubject(ctx, dest)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		fmt.Fprintf(e.stderr, "replay: no stream captures %s: the copies go to core NATS subscribers only\n", dest)
		return &coreSink{nc: nc, prefix: prefix}, dest + " (core NATS)", nil
	case err != nil:
		return nil, "", fmt.Errorf("finding the stream for %s: %w", dest, err)
	}
	return &streamSink{js: js, prefix: prefix}, fmt.Sprintf("%s (stream %s)", dest, name), nil
}

// ensureReplayStream creates the REPLAY stream unless it exists; an existing
// one is left as its operator configured it.
func ensureReplayStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.Stream(ctx, ReplayStream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("opening stream %s: %w", ReplayStream, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        ReplayStream,
		Description: "Copies of Rampart events re-published by rampart replay, under replay.<time>.>",
		Subjects:    []string{ReplayPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      replayMaxAge,
		Duplicates:  2 * time.Minute,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("creating stream %s: %w", ReplayStream, err)
	}
	return nil
}

// liveSink re-publishes onto the live subjects through the bus: validated,
// Nats-Msg-Id = event id, so JetStream drops what is still in its duplicate
// window and the ledger records an event once in any case.
type liveSink struct{ bus *bus.Bus }

func (s liveSink) send(ctx context.Context, subject string, _ uint64, ev cloudevents.Event, st *replayStats) error {
	ack, err := s.bus.PublishTo(ctx, subject, ev)
	if err != nil {
		return err
	}
	if ack.Duplicate {
		st.duplicates++
	}
	return nil
}

func (liveSink) flush(context.Context, *replayStats) error { return nil }

// copyMsg is the binary-mode copy of ev under prefix, marked as a replay.
func copyMsg(prefix, subject string, seq uint64, ev cloudevents.Event) (*nats.Msg, error) {
	msg, err := events.ToMsg(replaySubject(prefix, subject), ev)
	if err != nil {
		return nil, err
	}
	msg.Header.Set(HeaderReplayOf, subject)
	msg.Header.Set(HeaderReplaySequence, strconv.FormatUint(seq, 10))
	return msg, nil
}

// streamSink publishes copies into the stream that captures the prefix,
// asynchronously with a bounded window, checking every acknowledgement.
type streamSink struct {
	js      jetstream.JetStream
	prefix  string
	pending []jetstream.PubAckFuture
}

func (s *streamSink) send(ctx context.Context, subject string, seq uint64, ev cloudevents.Event, st *replayStats) error {
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
	if len(s.pending) >= replayWindow {
		return s.wait(ctx, len(s.pending)/2, st)
	}
	return nil
}

// wait waits for the oldest n acknowledgements.
func (s *streamSink) wait(ctx context.Context, n int, st *replayStats) error {
	for _, f := range s.pending[:n] {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				st.duplicates++
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

func (s *streamSink) flush(ctx context.Context, st *replayStats) error {
	return s.wait(ctx, len(s.pending), st)
}

// coreSink publishes copies on core NATS, for a prefix no stream captures.
type coreSink struct {
	nc     *nats.Conn
	prefix string
}

func (s *coreSink) send(_ context.Context, subject string, seq uint64, ev cloudevents.Event, _ *replayStats) error {
	msg, err := copyMsg(s.prefix, subject, seq, ev)
	if err != nil {
		return err
	}
	if err := s.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("publishing %s to %s: %w", ev.ID(), msg.Subject, err)
	}
	return nil
}

func (s *coreSink) flush(ctx context.Context, _ *replayStats) error {
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("flushing to NATS: %w", err)
	}
	return nil
}

var daysRE = regexp.MustCompile(`^([0-9]+)d$`)

// parseWhen reads a --since or --until value: a duration before now (Go
// syntax like 90s or 2h30m, or whole days like 7d) or a time (RFC 3339, or a
// date meaning its midnight UTC).
func parseWhen(flagName, v string, now time.Time) (time.Time, error) {
	if m := daysRE.FindStringSubmatch(v); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n <= 365*100 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%w: %s %q: a duration counts back from now and cannot be negative", errUsage, flagName, v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %s %q is neither a duration (90s, 2h30m, 7d) nor a time (RFC 3339 like 2026-11-26T17:00:00Z, or a date 2026-11-26)", errUsage, flagName, v)
}
