package eventline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/cmd/rampart/internal/eventline"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

var stored = time.Date(2026, 11, 26, 18, 30, 0, 123456789, time.UTC)

func TestFormat(t *testing.T) {
	promote, err := events.NewPromoted(events.Meta{ID: "p-1", Source: "/rampart/deployer", App: "shop", ChainID: "rel 7",
		Time: time.Date(2026, 11, 26, 18, 0, 0, 0, time.FixedZone("CET", 3600))},
		events.Promotion{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: "pkg:oci/shop@sha256:abc", Steps: []int{5, 25, 50, 100}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := events.ToMsg(events.SubjectOf(promote), promote)
	if err != nil {
		t.Fatal(err)
	}
	noTime := promote.Clone()
	noTime.SetTime(time.Time{})
	noTimeMsg, err := events.ToMsg(events.SubjectOf(noTime), noTime)
	if err != nil {
		t.Fatal(err)
	}
	dl := nats.Header{}
	for k, v := range msg.Header {
		dl[k] = v
	}
	dl.Set(bus.HeaderDeadLetterReason, "handler failed:\nboom")
	dl.Set(bus.HeaderOriginalSubject, msg.Subject)
	dl.Set(bus.HeaderOriginalSequence, "41")
	dl.Set(bus.HeaderConsumer, "notifier")

	tests := []struct {
		name string
		in   eventline.Message
		want string
	}{{
		name: "an event at its own time, in UTC",
		in:   eventline.Message{Subject: msg.Subject, Header: msg.Header, Data: msg.Data, Sequence: 42, Stored: stored},
		want: `2026-11-26T17:00:00.000Z #42 rampart.promote.shop release.promoted id=p-1 chain="rel 7" app=shop`,
	}, {
		name: "an event without a time shows when it was stored",
		in:   eventline.Message{Subject: noTimeMsg.Subject, Header: noTimeMsg.Header, Data: noTimeMsg.Data, Sequence: 43, Stored: stored},
		want: `2026-11-26T18:30:00.123Z #43 rampart.promote.shop release.promoted id=p-1 chain="rel 7" app=shop`,
	}, {
		name: "a dead letter with the event it held",
		in:   eventline.Message{Subject: "rampart.deadletter.notifier", Header: dl, Data: msg.Data, Sequence: 44, Stored: stored},
		want: `2026-11-26T18:30:00.123Z #44 rampart.deadletter.notifier DEAD-LETTER of=rampart.promote.shop#41 consumer=notifier type=release.promoted id=p-1 reason="handler failed:\nboom"`,
	}, {
		name: "a dead letter of garbage",
		in: eventline.Message{Subject: "rampart.deadletter.x", Header: nats.Header{bus.HeaderDeadLetterReason: {"no ce-specversion header"}},
			Data: []byte("junk"), Sequence: 45, Stored: stored},
		want: `2026-11-26T18:30:00.123Z #45 rampart.deadletter.x DEAD-LETTER reason="no ce-specversion header"`,
	}, {
		name: "not an event",
		in:   eventline.Message{Subject: "rampart.commit.shop", Data: []byte("junk"), Sequence: 46, Stored: stored},
		want: `2026-11-26T18:30:00.123Z #46 rampart.commit.shop UNDECODABLE "malformed CloudEvent message: no ce-specversion header and no structured content type"`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventline.Format(tt.in); got != tt.want {
				t.Errorf("Format:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestShortType(t *testing.T) {
	for in, want := range map[string]string{
		events.TypeChangeMerged:                     "change.merged",
		events.TypeReleasePromoted:                  "release.promoted",
		events.TypeCanaryStepped:                    "canary.stepped",
		"dev.cdevents.pipelinerun.finished.0.2.0":   "pipelinerun.finished",
		"dev.cdeventsx.acme-build.signed.0.1.0":     "acme-build.signed",
		"com.example.thing.happened.1.0.0":          "com.example.thing.happened",
		"no-version":                                "no-version",
		"dev.cdevents.change.merged.0.3.0-snapshot": "dev.cdevents.change.merged.0.3.0-snapshot",
	} {
		if got := eventline.ShortType(in); got != want {
			t.Errorf("ShortType(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzFormat feeds Format arbitrary stored messages: it must not panic and
// must always return exactly one line.
func FuzzFormat(f *testing.F) {
	f.Add("rampart.commit.shop", "1.0", "id-1", "/src", "dev.cdevents.change.merged.0.3.0", "", []byte(`{"context":{}}`))
	f.Add("rampart.deadletter.x", "1.0", "a\nb", "/s", "t\n.1.0.0", "why\nnot", []byte("junk"))
	f.Add("rampart.commit.shop", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"x\n","source":"/s","type":"a.b.1.0.0"}`))
	f.Fuzz(func(t *testing.T, subject, specversion, id, source, typ, reason string, data []byte) {
		h := nats.Header{}
		h.Set("ce-specversion", specversion)
		h.Set("ce-id", id)
		h.Set("ce-source", source)
		h.Set("ce-type", typ)
		if reason != "" {
			h.Set(bus.HeaderDeadLetterReason, reason)
			h.Set(bus.HeaderConsumer, reason)
			h.Set(bus.HeaderOriginalSubject, reason)
		}
		if len(data) > 0 && data[0] == '{' {
			h.Set(events.HeaderContentType, events.MediaStructured)
		}
		// Subjects come from NATS, which allows no white space in them.
		subject = strings.Map(func(r rune) rune {
			if r <= ' ' {
				return '_'
			}
			return r
		}, subject)
		line := eventline.Format(eventline.Message{Subject: subject, Header: h, Data: data, Sequence: 1, Stored: stored})
		if strings.ContainsAny(line, "\n\r") {
			t.Fatalf("Format returned more than one line: %q", line)
		}
	})
}
