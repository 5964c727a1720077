package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events/natstest"
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
