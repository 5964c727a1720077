package imagescan_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/scanner/internal/imagescan"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
)

// BenchmarkVerdict measures, in the same run and on the same image, the
// handling of a push whose digest is not cached (pull, Trivy scan, SBOM
// stored, findings cached, SBOM event and signed verdict published) against
// one whose digest is (cache read, gate, signed verdict published). Each
// iteration does one of each; the figures are per handling, and the ratio
// is fresh over cached.
func BenchmarkVerdict(b *testing.B) {
	f := setup(b, imagescan.Options{})
	f.start(b)
	ctx := context.Background()
	kv, err := f.b.JetStream().KeyValue(ctx, imagescan.CacheBucket)
	if err != nil {
		b.Fatal(err)
	}
	key := scan.CacheKey(env.vulnerable.Digest, env.db.Version())
	var fresh, cached time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if err := kv.Purge(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := f.p.Handle(ctx, bus.Delivery{Event: pushEvent(b, fmt.Sprintf("fresh-%d", i), env.vulnerable), Attempt: 1}); err != nil {
			b.Fatal(err)
		}
		fresh += time.Since(start)
		start = time.Now()
		if err := f.p.Handle(ctx, bus.Delivery{Event: pushEvent(b, fmt.Sprintf("cached-%d", i), env.vulnerable), Attempt: 1}); err != nil {
			b.Fatal(err)
		}
		cached += time.Since(start)
	}
	b.StopTimer()
	if got := f.scanner.images.Load(); got != int64(b.N) {
		b.Fatalf("%d Trivy scans for %d fresh and %d cached pushes", got, b.N, b.N)
	}
	n := float64(b.N)
	b.ReportMetric(float64(fresh.Microseconds())/n/1000, "fresh-ms")
	b.ReportMetric(float64(cached.Microseconds())/n/1000, "cached-ms")
	b.ReportMetric(float64(fresh)/float64(cached), "fresh/cached")
}
