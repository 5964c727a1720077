package ledger

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// TestLongEntryIsWrittenSigned: an entry too long for a bundle (a dead
// letter of 70 kB, over 64 kB once in base64) is written alone in the
// format before bundles, signed; the entries around it go in bundles, and
// the ledger verifies.
func TestLongEntryIsWrittenSigned(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	js := pub.JetStream()
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{CheckpointInterval: 10 * time.Millisecond})

	publishAsync(t, js, []*nats.Msg{commitMsg(t, "before", "before")})
	waitCommitted(t, in.l, 1)
	long := &nats.Msg{Subject: "rampart.x.y", Data: bytes.Repeat([]byte("x"), 70_000), Header: nats.Header{}}
	if _, err := js.PublishMsg(t.Context(), long); err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, in.l, 2) // the dead letter's entry
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "after", "after")})
	waitCommitted(t, in.l, 3)

	var kinds []string
	if _, err := streams.Read(t.Context(), js, streams.EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
		m, err := bundle.Read(msg.Headers(), msg.Data())
		if err != nil {
			return err
		}
		switch {
		case m.First >= 0:
			kinds = append(kinds, "bundle")
		case m.Signature != "" && len(m.Entries[0]) > bundle.MaxEntry:
			if err := s.Verifier().CheckEntry(m.Entries[0], m.Signature); err != nil {
				t.Errorf("the long entry's signature: %v", err)
			}
			e, err := entry.Unmarshal(m.Entries[0])
			if err != nil || e.Kind != entry.KindDeadLetter || len(e.Data) != 70_000 {
				t.Errorf("the long entry: %+v, %v", e, err)
			}
			kinds = append(kinds, "signed")
		default:
			kinds = append(kinds, "other")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kinds); got != "[bundle signed bundle]" {
		t.Fatalf("LEDGER holds %s, want a bundle, the signed long entry, a bundle", got)
	}
	if res, err := streams.Verify(t.Context(), js, s.Verifier()); err != nil || res.Entries != 3 || res.Bundled != 2 {
		t.Fatalf("streams.Verify = %+v, %v", res, err)
	}
	if res, err := apiVerify(t, in.l, s.Verifier()); err != nil || res.Entries != 3 || res.Bundled != 2 {
		t.Fatalf("API verify = %+v, %v", res, err)
	}
}

// TestBundlesCutBySize: bundles are cut at the byte bound as well as at
// tile boundaries; the entry bundles of the tiles endpoint join them, and
// the ledger verifies.
func TestBundlesCutBySize(t *testing.T) {
	defer func(old int) { maxBundleBytes = old }(maxBundleBytes)
	maxBundleBytes = 8 << 10
	const n = 400 // across a tile boundary
	in, pub, s := recordEvents(t, n, "cut-%d")
	js := pub.JetStream()

	bundles := 0
	if _, err := streams.Read(t.Context(), js, streams.EntriesStream, 1, func(seq uint64, msg jetstream.Msg) error {
		m, err := bundle.Read(msg.Headers(), msg.Data())
		if err != nil || m.First < 0 {
			return fmt.Errorf("LEDGER message %d: %+v, %v", seq, m, err)
		}
		if last := len(m.Entries[len(m.Entries)-1]) + 2; len(msg.Data())-last > maxBundleBytes {
			t.Errorf("bundle %d holds %d bytes before its last entry, over %d", seq, len(msg.Data())-last, maxBundleBytes)
		}
		bundles++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if bundles < n*700/maxBundleBytes {
		t.Fatalf("%d bundles for %d entries of about 700 bytes cut at %d bytes", bundles, n, maxBundleBytes)
	}
	if res, err := streams.Verify(t.Context(), js, s.Verifier()); err != nil || res.Entries != n {
		t.Fatalf("streams.Verify = %+v, %v", res, err)
	}
	auditTiles(t, in.l, s, n, func(i int64) string { return fmt.Sprintf("cut-%d", i) })
}
