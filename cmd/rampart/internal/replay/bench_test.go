package replay_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/replay"
)

// BenchmarkReplayRead reads RAMPART_BENCH_REPLAY_EVENTS (default 50,000)
// commit events with `rampart replay --dry-run`'s reader (replay.Run: read in
// stream order, decode and validate each event) against reading the same
// messages with a plain ordered consumer in the same run. The plain consumer
// pulls batches of the size replay pulls (replay.PullBatch), so the ratio
// compares the work done on each message, not the batch tuning.
//
// Besides the rates, it reports the CPU time of the whole process (the
// embedded JetStream server included) per event for each reader: on a
// machine shared with other work the wall-clock rates follow the load, the
// CPU spent on each event much less so.
func BenchmarkReplayRead(b *testing.B) {
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_REPLAY_EVENTS")); err == nil && v > 0 {
		n = v
	}
	w := storeWindow(b, n, nil, nil)
	bs, src := w.bus, w.src
	w.msgs = nil // compared by the tests only: not kept alive through the rounds
	since := time.Now().Add(-time.Hour)
	var rawTime, replayTime, rawCPU, replayCPU time.Duration
	for b.Loop() {
		start, cpu := time.Now(), cpuTime(b)
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
		rawCPU += cpuTime(b) - cpu

		start, cpu = time.Now(), cpuTime(b)
		st, err := replay.Run(b.Context(), bs.Conn(), src, replay.Options{Since: since, DryRun: true})
		replayTime += time.Since(start)
		replayCPU += cpuTime(b) - cpu
		if err != nil || st.Events != n {
			b.Fatalf("replay = %+v, %v", st, err)
		}
	}
	rounds := float64(b.N)
	b.ReportMetric(float64(n)*rounds/replayTime.Seconds(), "events/s")
	b.ReportMetric(float64(n)*rounds/rawTime.Seconds(), "raw-consume-events/s")
	b.ReportMetric(rawTime.Seconds()/replayTime.Seconds(), "ratio-to-raw")
	b.ReportMetric(float64(replayCPU.Microseconds())/(float64(n)*rounds), "cpu-µs/event")
	b.ReportMetric(float64(rawCPU.Microseconds())/(float64(n)*rounds), "raw-cpu-µs/event")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
