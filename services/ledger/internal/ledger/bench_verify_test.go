package ledger

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// benchEntries is the size of the ledger BenchmarkVerifyLarge writes:
// RAMPART_BENCH_LEDGER_ENTRIES, default 100,000 (make bench-ledger asks for
// 1,000,000).
func benchEntries() int {
	if v, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_LEDGER_ENTRIES")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

// writeLedger writes n signed entries (commit events of about 760 bytes, as
// the ledger records them, in the format before bundles: one entry per
// LEDGER message with its signature header) straight into LEDGER, and a
// checkpoint every 100,000 entries and at the end into LEDGER_CHECKPOINTS.
func writeLedger(b testing.TB, js jetstream.JetStream, s *checkpoint.Signer, n int) {
	writeLedgerAs(b, js, s, n, false)
}

// writeLedgerAs is writeLedger, in bundles of 256 entries (as the ledger
// writes them under load) when bundled is set.
func writeLedgerAs(b testing.TB, js jetstream.JetStream, s *checkpoint.Signer, n int, bundled bool) {
	b.Helper()
	if _, _, err := EnsureStreams(b.Context(), js, 1); err != nil {
		b.Fatal(err)
	}
	const chunk = 10_000
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tr := tree.New()
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		msgs := make([]*nats.Msg, hi-lo)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := lo + w; i < hi; i += workers {
					id := fmt.Sprintf("ev-%07d", i)
					ev := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/rampart/webhook/github","type":"dev.cdevents.change.merged.0.2.0","subject":"shop","time":"2026-12-01T13:00:00Z","datacontenttype":"application/json","data":{"context":{"version":"0.4.1","id":%q,"source":"/rampart/webhook/github","type":"dev.cdevents.change.merged.0.2.0","timestamp":"2026-12-01T13:00:00Z","chainId":"rel-%05d"},"subject":{"id":"shop/%d","source":"github.com/acme/shop","content":{"repository":{"id":"acme/shop"}}}}}`, id, id, i/10, i)
					data, err := entry.Marshal(&entry.Entry{
						Index: uint64(i), RecordedAt: t0.Add(time.Duration(i) * time.Microsecond),
						Subject: "rampart.change.shop", StreamSeq: uint64(i + 1), Kind: entry.KindEvent,
						EventID: id, Source: "/rampart/webhook/github", Type: "dev.cdevents.change.merged.0.2.0",
						ChainID: fmt.Sprintf("rel-%05d", i/10), Event: json.RawMessage(ev),
					})
					if err != nil {
						b.Error(err)
						return
					}
					leaf := tlog.RecordHash(data)
					sig := ""
					if !bundled {
						sig = s.SignEntry(data)
					}
					msgs[i-lo] = &nats.Msg{Subject: streams.EntriesSubject, Data: data, Header: nats.Header{
						entry.SignatureHeader: []string{sig},
						jetstream.MsgIDHeader: []string{hex.EncodeToString(leaf[:])},
					}}
				}
			})
		}
		wg.Wait()
		for _, m := range msgs {
			if _, err := tr.Append(m.Data); err != nil {
				b.Fatal(err)
			}
		}
		if bundled {
			msgs = bundleMsgs(s, int64(lo), msgs)
		}
		publishAsync(b, js, msgs)
		if size := int64(hi); size%100_000 == 0 || hi == n {
			root, err := tr.RootAt(size)
			if err != nil {
				b.Fatal(err)
			}
			cp, err := s.Sign(checkpoint.Checkpoint{Origin: s.Name(), Size: size, Root: root})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := js.Publish(b.Context(), streams.CheckpointsSubject, cp); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// bundleMsgs turns signed entry messages, from entry first on, into bundles
// that end at tile boundaries.
func bundleMsgs(s *checkpoint.Signer, first int64, msgs []*nats.Msg) []*nats.Msg {
	var out []*nats.Msg
	for lo := 0; lo < len(msgs); {
		hi := min(len(msgs), lo+int(bundle.TileWidth-(first+int64(lo))%bundle.TileWidth))
		var data []byte
		leaves := make([]tlog.Hash, 0, hi-lo)
		for _, m := range msgs[lo:hi] {
			data = bundle.Append(data, m.Data)
			leaves = append(leaves, tlog.RecordHash(m.Data))
		}
		enc := bundle.EncodeLeaves(leaves)
		at := first + int64(lo)
		out = append(out, &nats.Msg{Subject: streams.EntriesSubject, Data: data, Header: nats.Header{
			bundle.FirstHeader:  []string{strconv.FormatInt(at, 10)},
			bundle.LeavesHeader: []string{enc},
			bundle.MACHeader:    []string{s.BundleMAC(at, enc)},
		}})
		lo = hi
	}
	return out
}

// peakHeap samples, every 10 ms until stop is called, the heap held by
// objects (live and not yet swept) and the live heap as of the last GC;
// stop returns the largest of each.
func peakHeap() (stop func() (heap, live uint64)) {
	sample := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var peak, peakLive atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			rtmetrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			if v := sample[1].Value.Uint64(); v > peakLive.Load() {
				peakLive.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		return peak.Load(), peakLive.Load()
	}
}

// BenchmarkVerifyLarge verifies a ledger of benchEntries() entries read from
// JetStream with streams.Verify (what the ledger runs to name a tampered
// entry; `rampart ledger verify` runs the same checker through the HTTP
// API), against reading the same LEDGER messages without looking at them in
// the same run. The peak heap (objects, live or not yet collected) and the
// peak live heap (as of each GC) include the JetStream server's, which runs in
// this process. With RAMPART_BENCH_ALL_SIGNATURES=1 it also times the
// checker with every entry's signature verified (what verify did before
// checkpoints pinned the entries).
func BenchmarkVerifyLarge(b *testing.B) {
	n := benchEntries()
	ns := natstest.Server(b, "")
	js := natstest.Bus(b, ns).JetStream()
	s := newSigner(b)
	start := time.Now()
	bundled := os.Getenv("RAMPART_BENCH_SIGNED_ENTRIES") != "1"
	writeLedgerAs(b, js, s, n, bundled)
	b.Logf("wrote %d entries (bundled: %v) in %v", n, bundled, time.Since(start))
	allSigs := os.Getenv("RAMPART_BENCH_ALL_SIGNATURES") == "1" && !bundled
	var readTime, verifyTime, allTime time.Duration
	var peak, peakLive uint64
	for b.Loop() {
		start := time.Now()
		got := 0
		if _, err := streams.Read(b.Context(), js, streams.EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
			got += len(streams.MessageEntries(msg.Headers(), msg.Data()))
			return nil
		}); err != nil || got != n {
			b.Fatalf("read %d messages, %v", got, err)
		}
		readTime += time.Since(start)

		runtime.GC()
		stop := peakHeap()
		start = time.Now()
		res, err := streams.Verify(b.Context(), js, s.Verifier())
		verifyTime += time.Since(start)
		heap, live := stop()
		peak, peakLive = max(peak, heap), max(peakLive, live)
		if err != nil || res.Entries != int64(n) || res.SignaturesChecked != 0 {
			b.Fatalf("Verify = %+v, %v", res, err)
		}
		if allSigs {
			start = time.Now()
			c := verify.NewChecker(s.Verifier())
			if _, err := streams.Read(b.Context(), js, streams.EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
				for _, e := range streams.MessageEntries(msg.Headers(), msg.Data()) {
					c.Entry(e)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			cps, err := streams.Checkpoints(b.Context(), js)
			if err != nil {
				b.Fatal(err)
			}
			for _, cp := range cps {
				c.Checkpoint(cp)
			}
			if res, err := c.Result(); err != nil || res.SignaturesChecked != int64(n) {
				b.Fatalf("all signatures: %+v, %v", res, err)
			}
			allTime += time.Since(start)
		}
	}
	rounds := float64(b.N)
	b.ReportMetric(float64(n)*rounds/verifyTime.Seconds(), "entries/s")
	b.ReportMetric(float64(n)*rounds/readTime.Seconds(), "raw-read-msgs/s")
	b.ReportMetric(readTime.Seconds()/verifyTime.Seconds(), "ratio-to-raw-read")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(peakLive)/(1<<20), "peak-live-heap-MB")
	if allSigs {
		b.ReportMetric(float64(n)*rounds/allTime.Seconds(), "all-signatures-entries/s")
	}
}

// BenchmarkInclusionHTTP asks the HTTP API for inclusion proofs of random
// entries of a 20,000-entry ledger and checks each against the signed root,
// reporting the latency per request (p50, p99, max).
func BenchmarkInclusionHTTP(b *testing.B) {
	const n = 20_000
	ns := natstest.Server(b, "")
	pub := natstest.Bus(b, ns)
	s := newSigner(b)
	in := startLedger(b, ns, s, Options{CheckpointInterval: 10 * time.Millisecond})
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("ev-%06d", i)
		msgs[i] = commitMsg(b, id, id)
	}
	publishAsync(b, pub.JetStream(), msgs)
	waitCheckpointed(b, in.l, n)
	srv := httptest.NewServer(in.l.Handler())
	b.Cleanup(srv.Close)
	c, err := client.New(srv.URL, srv.Client())
	if err != nil {
		b.Fatal(err)
	}
	cp, _ := in.l.LatestCheckpoint()
	head, err := s.Verifier().Open(cp)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		i := rand.Int64N(n)
		start := time.Now()
		p, err := c.InclusionProof(b.Context(), i, n)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if err := tlog.CheckRecord(p.Proof, n, head.Root, i, p.LeafHash); err != nil {
			b.Fatal(err)
		}
	}
	reportPercentiles(b, lat, "inclusion")
}
