package events_test

import (
	"testing"

	"github.com/rampartci/rampart/pkg/events"
)

// BenchmarkReadEvent measures what a reader of the stream pays for each
// event: decoding the NATS message and validating the event, and the parts
// of the validation.
func BenchmarkReadEvent(b *testing.B) {
	ev, err := events.NewCommit(events.Meta{ID: "r-0000001", Source: "/bench", ChainID: "rel-1", App: "shop"},
		events.Commit{Repository: "github.com/acme/shop", SHA: "abc123"})
	if err != nil {
		b.Fatal(err)
	}
	m, err := events.ToMsg(events.SubjectOf(ev), ev)
	if err != nil {
		b.Fatal(err)
	}
	s, err := events.DefaultSchemas()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("FromMsg", func(b *testing.B) {
		for b.Loop() {
			if _, err := events.FromMsg(m.Header, m.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ReadMsg", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.ReadMsg(m.Header, m.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FromMsg+Validate", func(b *testing.B) {
		for b.Loop() {
			ev, err := events.FromMsg(m.Header, m.Data)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Validate(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Validate", func(b *testing.B) {
		for b.Loop() {
			if err := s.Validate(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := events.Parse(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ValidateCDEvent", func(b *testing.B) {
		for b.Loop() {
			if err := s.ValidateCDEvent(ev.Type(), ev.Data()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ChainID", func(b *testing.B) {
		for b.Loop() {
			if events.ChainID(ev) != "rel-1" {
				b.Fatal("no chain id")
			}
		}
	})
	b.Run("CloudEventValidate", func(b *testing.B) {
		for b.Loop() {
			if err := ev.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
