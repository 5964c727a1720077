package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// copyLedger copies the LEDGER and LEDGER_CHECKPOINTS messages of from
// into to (a server whose streams are made anew), passing each LEDGER
// message through change.
func copyLedger(t *testing.T, from, to jetstream.JetStream, change func(seq uint64, m *nats.Msg)) {
	t.Helper()
	if _, _, err := EnsureStreams(t.Context(), to, 1); err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	if _, err := streams.Read(t.Context(), from, streams.EntriesStream, 1, func(seq uint64, msg jetstream.Msg) error {
		m := &nats.Msg{Subject: streams.EntriesSubject, Data: bytes.Clone(msg.Data()), Header: nats.Header{}}
		for _, h := range []string{bundle.FirstHeader, bundle.LeavesHeader, bundle.MACHeader, jetstream.MsgIDHeader} {
			if v := msg.Headers().Get(h); v != "" {
				m.Header.Set(h, v)
			}
		}
		change(seq, m)
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	publishAsync(t, to, msgs)
	cps, err := streams.Checkpoints(t.Context(), from)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		if _, err := to.Publish(t.Context(), streams.CheckpointsSubject, cp); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChangedByteInBundleIsNamed: one byte of one entry changed inside a
// stored bundle is named by its entry index by the verifier, and the
// ledger refuses to record on top of it.
func TestChangedByteInBundleIsNamed(t *testing.T) {
	in, pub, s := recordEvents(t, 40, "tamper-%02d")
	in.stop(t)

	// The copy with entry 23's event id changed by one byte, wherever its
	// bundle is.
	ns2 := natstest.Server(t, "")
	js2 := natstest.Bus(t, ns2).JetStream()
	changed := false
	copyLedger(t, pub.JetStream(), js2, func(_ uint64, m *nats.Msg) {
		if i := bytes.Index(m.Data, []byte(`"eventId":"tamper-23"`)); i >= 0 {
			m.Data[i+len(`"eventId":"tamper-2`)] = '4'
			changed = true
		}
	})
	if !changed {
		t.Fatal("entry 23 not found in LEDGER")
	}
	// The original verifies; the copy names entry 23.
	if _, err := streams.Verify(t.Context(), pub.JetStream(), s.Verifier()); err != nil {
		t.Fatalf("streams.Verify of the original: %v", err)
	}
	var ve *verify.Error
	if _, err := streams.Verify(t.Context(), js2, s.Verifier()); !errors.As(err, &ve) || ve.Index != 23 || !errors.Is(err, verify.ErrEntryLeaf) {
		t.Fatalf("streams.Verify of the changed copy = %v, want entry 23 named", err)
	}
	in2 := startLedger(t, ns2, s, Options{})
	if err := in2.stop(t); !errors.Is(err, ErrTampered) {
		t.Fatalf("the ledger on the changed copy: Run = %v, want ErrTampered", err)
	}
}

// recordEvents starts a ledger (checkpoint interval 10 ms) on a new server
// and records n commit events with ids fmt.Sprintf(idFormat, i).
func recordEvents(t *testing.T, n int, idFormat string) (*instance, *bus.Bus, *checkpoint.Signer) {
	t.Helper()
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{CheckpointInterval: 10 * time.Millisecond})
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf(idFormat, i)
		msgs[i] = commitMsg(t, id, id)
	}
	publishAsync(t, pub.JetStream(), msgs)
	waitCommitted(t, in.l, int64(n))
	return in, pub, s
}
