// Package eventline renders one message of the RAMPART stream as one readable
// line: the output of `rampart events tail` and `rampart replay --dry-run`.
package eventline

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// TimeFormat is how a line shows its time: UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Message is a stored message as the stream returned it.
type Message struct {
	Subject  string
	Header   nats.Header
	Data     []byte
	Sequence uint64    // stream sequence
	Stored   time.Time // when the stream stored it
}

// Format returns the line for m, without a newline:
//
//	<time> #<seq> <subject> <type> id=<id> chain=<chainId> app=<app>
//
// The time is the event's own, or the stored time when it has none. A dead
// letter shows what it was and why it was given up on; a message that is not
// a CloudEvent shows why it does not decode.
func Format(m Message) string {
	prefix := func(t time.Time) string {
		if t.IsZero() {
			t = m.Stored
		}
		return fmt.Sprintf("%s #%d %s", t.UTC().Format(TimeFormat), m.Sequence, m.Subject)
	}
	if IsDeadLetter(m.Subject) {
		return prefix(time.Time{}) + " " + deadLetter(m)
	}
	ev, err := events.FromMsg(m.Header, m.Data)
	if err != nil {
		return fmt.Sprintf("%s UNDECODABLE %s", prefix(time.Time{}), quote(err.Error()))
	}
	return fmt.Sprintf("%s %s id=%s chain=%s app=%s", prefix(ev.Time()), value(ShortType(ev.Type())),
		value(ev.ID()), value(events.ChainID(ev)), value(events.App(ev)))
}

func deadLetter(m Message) string {
	h := m.Header
	var b strings.Builder
	b.WriteString("DEAD-LETTER")
	if orig := h.Get(bus.HeaderOriginalSubject); orig != "" {
		fmt.Fprintf(&b, " of=%s", value(orig))
		if seq := h.Get(bus.HeaderOriginalSequence); seq != "" {
			fmt.Fprintf(&b, "#%s", value(seq))
		}
	}
	if c := h.Get(bus.HeaderConsumer); c != "" {
		fmt.Fprintf(&b, " consumer=%s", value(c))
	}
	// The copy keeps the original's headers: name the event when it was one.
	if ev, err := events.FromMsg(h, m.Data); err == nil {
		fmt.Fprintf(&b, " type=%s id=%s", value(ShortType(ev.Type())), value(ev.ID()))
	}
	fmt.Fprintf(&b, " reason=%s", quote(h.Get(bus.HeaderDeadLetterReason)))
	return b.String()
}

// IsDeadLetter reports whether subject is a consumer's dead-letter subject.
func IsDeadLetter(subject string) bool {
	return strings.HasPrefix(subject, events.SubjectPrefix+"."+events.KindDeadLetter+".")
}

// ShortType drops the CDEvents namespace and the version from a type:
// "dev.cdevents.change.merged.0.3.0" is "change.merged" and
// "dev.cdeventsx.rampart-release.promoted.0.1.0" is "release.promoted".
// Other types lose only their version.
func ShortType(t string) string {
	name, _, err := events.SplitType(t)
	if err != nil {
		return t
	}
	for _, ns := range []string{"dev.cdevents.", "dev.cdeventsx.rampart-", "dev.cdeventsx."} {
		if s, ok := strings.CutPrefix(name, ns); ok {
			return s
		}
	}
	return name
}

func value(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

func quote(s string) string { return strconv.Quote(s) }
