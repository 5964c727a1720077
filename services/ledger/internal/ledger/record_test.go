package ledger

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// TestEventEntriesHoldTheStructuredEvent records events that the
// transcoder takes and events it leaves to FromMsg and Structured, and
// checks that every entry holds what FromMsg, Structured and ChainID make
// of its message: the fast path records the same bytes as the slow one.
func TestEventEntriesHoldTheStructuredEvent(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	js := pub.JetStream()
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{})

	ev, err := events.NewPage(events.Meta{ID: "page-1", Source: "/rampart/notifier", ChainID: "rel-é", App: "shop",
		Time: time.Date(2026, 11, 26, 12, 0, 0, 5000, time.UTC)},
		events.Page{App: "shop", Environment: "prod", TicketURI: "https://acme.pagerduty.com/incidents/Q1", DedupKey: "r-1",
			Description: "rollback <shop> & \u2028 été"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := events.ToMsg(events.SubjectOf(ev), ev)
	if err != nil {
		t.Fatal(err)
	}
	// A source the transcoder leaves to FromMsg.
	urn := commitMsg(t, "urn-1", "urn-1")
	urn.Header.Set("ce-source", "urn:rampart:test")
	// Data whose chain id the transcoder leaves to ChainID.
	nullChain := commitMsg(t, "null-1", "null-1")
	nullChain.Data = []byte(`{"context":{"chainId":null}, "x": [1, 2]}`)
	// Structured mode.
	structured := commitMsg(t, "structured-1", "structured-1")
	sev, err := events.FromMsg(structured.Header, structured.Data)
	if err != nil {
		t.Fatal(err)
	}
	sdata, err := events.Structured(sev)
	if err != nil {
		t.Fatal(err)
	}
	structured = &nats.Msg{Subject: structured.Subject, Data: sdata, Header: nats.Header{
		events.HeaderContentType: {events.MediaStructured}, jetstream.MsgIDHeader: {"structured-1"}}}

	msgs := []*nats.Msg{commitMsg(t, "commit-1", "commit-1"), page, urn, nullChain, structured}
	for _, m := range msgs[:2] {
		if _, ok := events.ReadAttributes(m.Header); !ok {
			t.Fatalf("the transcoder does not take %s", m.Header.Get("ce-id"))
		}
	}
	publishAsync(t, js, msgs)
	waitCommitted(t, in.l, int64(len(msgs)))
	got, err := readLog(t, js, s.Verifier())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d entries, want %d", len(got), len(msgs))
	}
	for i, m := range msgs {
		ev, err := events.FromMsg(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		structured, err := events.Structured(ev)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, structured); err != nil {
			t.Fatal(err)
		}
		e := got[i]
		if e.EventID != ev.ID() || e.Source != ev.Source() || e.Type != ev.Type() || e.ChainID != events.ChainID(ev) {
			t.Errorf("entry %d: id %q source %q type %q chain %q, want %q %q %q %q", i, e.EventID, e.Source, e.Type, e.ChainID,
				ev.ID(), ev.Source(), ev.Type(), events.ChainID(ev))
		}
		if !bytes.Equal(e.Event, want.Bytes()) {
			t.Errorf("entry %d holds\n%s\nwant\n%s", i, e.Event, want.Bytes())
		}
	}
}
