package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// TestSignedEntriesLedgerContinuesInBundles: a ledger written one signed
// entry per LEDGER message (the format before bundles) is taken up by the
// ledger, which continues in bundles after its last entry without rewriting
// anything; the verifier, the query API, the tiles endpoint and a restart
// read both kinds.
func TestSignedEntriesLedgerContinuesInBundles(t *testing.T) {
	const old, added = 300, 300
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	js := pub.JetStream()
	s := newSigner(t)
	// The RAMPART messages the old entries recorded (sequences 1..300),
	// then the old ledger itself, checkpoint at 300 included.
	var msgs []*nats.Msg
	for i := range old {
		id := fmt.Sprintf("pre-%d", i)
		msgs = append(msgs, commitMsg(t, id, id))
	}
	publishAsync(t, js, msgs)
	writeLedger(t, js, s, old)

	in := startLedger(t, ns, s, Options{CheckpointInterval: 10 * time.Millisecond})
	if in.l.Size() != old || in.l.lastSeq != old {
		t.Fatalf("rebuilt ledger has %d entries, cursor %d; want %d, %d", in.l.Size(), in.l.lastSeq, old, old)
	}
	msgs = nil
	for i := range added {
		id := fmt.Sprintf("mig-%d", i)
		msgs = append(msgs, commitMsg(t, id, id))
	}
	publishAsync(t, js, msgs)
	waitCommitted(t, in.l, old+added)

	// Nothing was rewritten: the old messages are where they were, and the
	// first new message is a bundle from entry 300.
	stream, err := js.Stream(t.Context(), streams.EntriesStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(t.Context(), old+1)
	if err != nil {
		t.Fatal(err)
	}
	if first := m.Header.Get(bundle.FirstHeader); first != fmt.Sprint(old) {
		t.Fatalf("LEDGER message %d has %s %q, want a bundle from entry %d", old+1, bundle.FirstHeader, first, old)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs; n < old+2 || n > old+added/2 {
		t.Fatalf("LEDGER holds %d messages for %d old and %d bundled entries", n, old, added)
	}

	check := func(l *Ledger, size int64) {
		t.Helper()
		res, err := streams.Verify(t.Context(), js, s.Verifier())
		if err != nil || res.Entries != size || res.SignaturesChecked != 0 || res.Unanchored != 0 {
			t.Fatalf("streams.Verify = %+v, %v", res, err)
		}
		res, err = apiVerify(t, l, s.Verifier())
		if err != nil || res.Entries != size || res.Unanchored != 0 {
			t.Fatalf("API verify = %+v, %v", res, err)
		}
		auditTiles(t, l, s, size, func(i int64) string {
			if i < old {
				return fmt.Sprintf("ev-%07d", i)
			}
			return fmt.Sprintf("mig-%d", i-old)
		})
	}
	check(in.l, old+added)

	// A restart reads both kinds and records on.
	in.stop(t)
	in = startLedger(t, ns, s, Options{CheckpointInterval: 10 * time.Millisecond})
	if in.l.Size() != old+added {
		t.Fatalf("restarted ledger has %d entries, want %d", in.l.Size(), old+added)
	}
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "mig-last", "mig-last")})
	waitCommitted(t, in.l, old+added+1)
	res, err := streams.Verify(t.Context(), js, s.Verifier())
	if err != nil || res.Entries != old+added+1 {
		t.Fatalf("streams.Verify after the restart = %+v, %v", res, err)
	}
}
