package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// BenchmarkThroughput measures events published until all are committed to
// LEDGER and covered by a signed checkpoint, against plain JetStream async
// publishing of the same messages to another stream on the same server in
// the same run.
func BenchmarkThroughput(b *testing.B) {
	const batch = 20_000
	ns := natstest.Server(b, "")
	pub := natstest.Bus(b, ns)
	js := pub.JetStream()
	if _, err := js.CreateStream(b.Context(), jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	in := startLedger(b, ns, newSigner(b), Options{CheckpointInterval: 10 * time.Millisecond})

	var rawTime, ledgerTime time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		raw := make([]*nats.Msg, batch)
		events := make([]*nats.Msg, batch)
		for i := range batch {
			id := fmt.Sprintf("b%d-%06d", round, i)
			events[i] = commitMsg(b, id, id)
			raw[i] = commitMsg(b, id, id)
			raw[i].Subject = "raw.commit.shop"
		}
		want := in.l.Size() + batch
		b.StartTimer()

		start := time.Now()
		publishAsync(b, js, raw)
		rawTime += time.Since(start)

		start = time.Now()
		publishAsync(b, js, events)
		waitCommitted(b, in.l, want)
		ledgerTime += time.Since(start)
		round++
	}
	n := float64(batch * round)
	ledgerRate := n / ledgerTime.Seconds()
	rawRate := n / rawTime.Seconds()
	b.ReportMetric(ledgerRate, "events/s")
	b.ReportMetric(rawRate, "raw-publish-events/s")
	b.ReportMetric(ledgerRate/rawRate, "ratio-to-raw")
}

// recordedLedger runs a ledger over n events in chains of chainLen entries
// and returns its JetStream and key once everything is committed,
// checkpointed and indexed, with the ledger stopped.
func recordedLedger(b *testing.B, n, chainLen int) (jetstream.JetStream, *checkpoint.Signer) {
	b.Helper()
	ns := natstest.Server(b, "")
	pub := natstest.Bus(b, ns)
	js := pub.JetStream()
	s := newSigner(b)
	in := startLedger(b, ns, s, Options{CheckpointInterval: 10 * time.Millisecond})
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("ev-%06d", i)
		msgs[i] = chainMsg(b, id, id, fmt.Sprintf("rel-%05d", i/chainLen))
	}
	publishAsync(b, js, msgs)
	waitCommitted(b, in.l, int64(n))
	waitIndexed(b, js, int64(n))
	in.stop(b)
	return js, s
}

// BenchmarkChain compares streams.Chain, which reads the chain index,
// with a full read of LEDGER (what Chain did before the index, and still
// does without it), for one 10-entry chain among 20,000 entries.
func BenchmarkChain(b *testing.B) {
	const n, chainLen = 20_000, 10
	js, _ := recordedLedger(b, n, chainLen)
	chain := fmt.Sprintf("rel-%05d", n/chainLen/2)
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			es, err := streams.Chain(b.Context(), js, chain)
			if err != nil || len(es) != chainLen {
				b.Fatalf("Chain = %d entries, %v", len(es), err)
			}
		}
	})
	b.Run("full scan", func(b *testing.B) {
		for b.Loop() {
			found := 0
			_, err := streams.Read(b.Context(), js, streams.EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
				e, err := entry.Unmarshal(msg.Data())
				if err != nil {
					return err
				}
				if e.ChainID == chain {
					found++
				}
				return nil
			})
			if err != nil || found != chainLen {
				b.Fatalf("scan found %d entries, %v", found, err)
			}
		}
	})
}

// BenchmarkVerifyStream runs streams.Verify, the streaming verifier
// behind `rampart ledger verify`, over a 20,000-entry ledger in JetStream:
// reading the streams included.
func BenchmarkVerifyStream(b *testing.B) {
	const n = 20_000
	js, s := recordedLedger(b, n, 10)
	for b.Loop() {
		res, err := streams.Verify(b.Context(), js, s.Verifier())
		if err != nil || res.Entries != n {
			b.Fatalf("Verify = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
