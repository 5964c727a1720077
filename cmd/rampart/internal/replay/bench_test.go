package replay_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/replay"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// BenchmarkReplayRead reads RAMPART_BENCH_REPLAY_EVENTS (default 50,000)
// commit events with `rampart replay --dry-run`'s reader (replay.Run: read in
// stream order, decode and validate each event) against reading the same
// messages with a plain ordered consumer in the same run. The plain consumer
// pulls batches of the size replay pulls (replay.PullBatch), so the ratio
// compares the work done on each message, not the batch tuning.
func BenchmarkReplayRead(b *testing.B) {
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_REPLAY_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ns := natstest.Server(b, "")
	bs := natstest.Bus(b, ns)
	js := bs.JetStream()
	for i := range n {
		ev, err := events.NewCommit(events.Meta{ID: fmt.Sprintf("r-%07d", i), Source: "/bench", ChainID: fmt.Sprintf("rel-%d", i/10), App: "shop"},
			events.Commit{Repository: "github.com/acme/shop", SHA: "abc123"})
		if err != nil {
			b.Fatal(err)
		}
		m, err := events.ToMsg(events.SubjectOf(ev), ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(10*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	src, err := js.Stream(b.Context(), bus.StreamName)
	if err != nil {
		b.Fatal(err)
	}
	since := time.Now().Add(-time.Hour)
	var rawTime, replayTime time.Duration
	for b.Loop() {
		start := time.Now()
		cons, err := src.OrderedConsumer(b.Context(), jetstream.OrderedConsumerConfig{})
		if err != nil {
			b.Fatal(err)
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(replay.PullBatch))
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			if _, err := it.Next(); err != nil {
				b.Fatal(err)
			}
		}
		it.Stop()
		rawTime += time.Since(start)

		start = time.Now()
		st, err := replay.Run(b.Context(), bs.Conn(), src, replay.Options{Since: since, DryRun: true})
		replayTime += time.Since(start)
		if err != nil || st.Events != n {
			b.Fatalf("replay = %+v, %v", st, err)
		}
	}
	rounds := float64(b.N)
	b.ReportMetric(float64(n)*rounds/replayTime.Seconds(), "events/s")
	b.ReportMetric(float64(n)*rounds/rawTime.Seconds(), "raw-consume-events/s")
	b.ReportMetric(rawTime.Seconds()/replayTime.Seconds(), "ratio-to-raw")
}
