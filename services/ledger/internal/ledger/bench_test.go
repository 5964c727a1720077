package ledger

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// BenchmarkThroughput measures events published until all are committed to
// LEDGER and covered by a signed checkpoint, against plain JetStream async
// publishing of the same messages, with their Nats-Msg-Id, to another stream
// on the same server in the same run.
//
// A third phase, the floor, publishes the same messages to a stream read by
// a consumer that does only the JetStream work the ledger cannot avoid: it
// takes each message as the ledger's consumer does, writes them on in
// 256-message bundles and acknowledges each bundle once it is stored. Its
// ratio is the most any ledger that consumes the stream can reach on this
// machine; the gap between it and the ledger's is the ledger's own work.
func BenchmarkThroughput(b *testing.B) {
	const batch = 80 * 256 // whole bundles, so that the floor consumer needs no flush timer
	ns := natstest.Server(b, "")
	pub := natstest.Bus(b, ns)
	js := pub.JetStream()
	if _, err := js.CreateStream(b.Context(), jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	in := startLedger(b, ns, newSigner(b), Options{CheckpointInterval: 10 * time.Millisecond})
	floorDone := startFloor(b, ns)

	var rawTime, ledgerTime, floorTime, rawCPU, ledgerCPU, floorCPU time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		raw := make([]*nats.Msg, batch)
		events := make([]*nats.Msg, batch)
		floor := make([]*nats.Msg, batch)
		for i := range batch {
			id := fmt.Sprintf("b%d-%06d", round, i)
			events[i] = commitMsg(b, id, id)
			raw[i] = commitMsg(b, id, id)
			raw[i].Subject = "raw.commit.shop"
			floor[i] = commitMsg(b, id, id)
			floor[i].Subject = "floor.commit.shop"
		}
		want := in.l.Size() + batch
		b.StartTimer()

		start, cpu := time.Now(), processCPU(b)
		publishAsync(b, js, raw)
		rawTime += time.Since(start)
		rawCPU += processCPU(b) - cpu

		start, cpu = time.Now(), processCPU(b)
		publishAsync(b, js, events)
		waitCheckpointed(b, in.l, want)
		ledgerTime += time.Since(start)
		ledgerCPU += processCPU(b) - cpu

		start, cpu = time.Now(), processCPU(b)
		publishAsync(b, js, floor)
		floorDone(b, int64(batch*(round+1)))
		floorTime += time.Since(start)
		floorCPU += processCPU(b) - cpu
		round++
	}
	n := float64(batch * round)
	ledgerRate := n / ledgerTime.Seconds()
	rawRate := n / rawTime.Seconds()
	b.ReportMetric(ledgerRate, "events/s")
	b.ReportMetric(rawRate, "raw-publish-events/s")
	b.ReportMetric(ledgerRate/rawRate, "ratio-to-raw")
	// CPU per event of the whole process (publisher, server, ledger) moves
	// far less with the load of a shared machine than the rates do.
	b.ReportMetric(float64(ledgerCPU.Microseconds())/n, "cpu-µs/event")
	b.ReportMetric(float64(rawCPU.Microseconds())/n, "raw-cpu-µs/event")
	b.ReportMetric(rawTime.Seconds()/floorTime.Seconds(), "floor-ratio-to-raw")
	b.ReportMetric(float64(floorCPU.Microseconds())/n, "floor-cpu-µs/event")
}

// startFloor starts the floor of BenchmarkThroughput: a durable consumer of
// a FLOOR stream, configured as the ledger's (its window, at most four
// windows unacknowledged), that publishes every 256 messages it takes as one
// message to FLOOR_BUNDLES and acknowledges them all once that is stored.
// The returned function waits until n messages are acknowledged (n a
// multiple of 256).
func startFloor(b *testing.B, ns *server.Server) (wait func(b *testing.B, n int64)) {
	const bundleLen, window = 256, 512
	js, err := jetstream.New(natstest.Connect(b, ns))
	if err != nil {
		b.Fatal(err)
	}
	for name, subject := range map[string]string{"FLOOR": "floor.>", "FLOOR_BUNDLES": "floorbundles"} {
		if _, err := js.CreateStream(b.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage}); err != nil {
			b.Fatal(err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(b.Context(), "FLOOR", jetstream.ConsumerConfig{
		Durable: "floor", AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 4 * window})
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	var data []byte
	taken := 0
	cc, err := cons.Consume(func(m jetstream.Msg) {
		data = append(data, m.Data()...)
		if taken++; taken%bundleLen != 0 {
			return
		}
		fut, err := js.PublishAsync("floorbundles", data)
		data = nil
		if err != nil {
			b.Error(err)
			return
		}
		go func() {
			select {
			case <-fut.Ok():
				if m.Ack() == nil {
					acked.Add(bundleLen)
				}
			case err := <-fut.Err():
				b.Error(err)
			}
		}()
	}, jetstream.PullMaxMessages(window))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	return func(b *testing.B, n int64) {
		natstest.CheckFor(b, 10*time.Minute, time.Millisecond, func() error {
			if got := acked.Load(); got < n {
				return fmt.Errorf("floor consumer acknowledged %d of %d", got, n)
			}
			return nil
		})
	}
}

// processCPU is the user and system CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckpointLatency publishes events at a steady rate
// (RAMPART_BENCH_RATE events/s, default 2,000, for 3 seconds) and reports how
// long each waited from its publish to the first signed checkpoint covering
// it (p50, p99, max), with the checkpoint interval of 10 ms.
func BenchmarkCheckpointLatency(b *testing.B) {
	rate := 2000
	if v, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	ns := natstest.Server(b, "")
	pub := natstest.Bus(b, ns)
	js := pub.JetStream()
	in := startLedger(b, ns, newSigner(b), Options{CheckpointInterval: 10 * time.Millisecond})

	// covered[i] is when the first checkpoint covering entry i was stored.
	var mu sync.Mutex
	var covered []time.Time
	hook := func(size int64) {
		now := time.Now()
		mu.Lock()
		for int64(len(covered)) < size {
			covered = append(covered, now)
		}
		mu.Unlock()
	}
	in.l.signedHook.Store(&hook)
	defer in.l.signedHook.Store(nil)

	const tick = 5 * time.Millisecond
	perTick := max(1, rate*int(tick)/int(time.Second))
	var published []time.Time
	round := 0
	for b.Loop() {
		b.StopTimer()
		n := 3 * rate / perTick * perTick
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			id := fmt.Sprintf("l%d-%06d", round, i)
			msgs[i] = commitMsg(b, id, id)
		}
		want := in.l.Size() + int64(n)
		b.StartTimer()
		t := time.NewTicker(tick)
		for i := 0; i < n; i += perTick {
			<-t.C
			for _, m := range msgs[i : i+perTick] {
				published = append(published, time.Now())
				if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(10*time.Second)); err != nil {
					b.Fatalf("publish: %v", err)
				}
			}
		}
		t.Stop()
		waitCheckpointed(b, in.l, want)
		round++
	}
	mu.Lock()
	defer mu.Unlock()
	waits := make([]time.Duration, len(published))
	for i, p := range published {
		waits[i] = covered[i].Sub(p)
	}
	b.ReportMetric(float64(rate), "events/s-offered")
	reportPercentiles(b, waits, "publish-to-checkpoint")
}

// waitCheckpointed is waitCommitted with a deadline for a benchmark on a
// loaded machine, where 20,000 events can take minutes.
func waitCheckpointed(b *testing.B, l *Ledger, n int64) {
	b.Helper()
	natstest.CheckFor(b, 10*time.Minute, time.Millisecond, func() error {
		if _, size := l.LatestCheckpoint(); size != n || l.Size() != n {
			return fmt.Errorf("ledger has %d entries, checkpoint at %d, want %d", l.Size(), size, n)
		}
		return nil
	})
}

// reportPercentiles reports the p50, p99 and max of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration, name string) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(at(1), name+"-max-ms")
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
