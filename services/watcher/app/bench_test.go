package app

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/anomaly"
	"github.com/rampartci/rampart/services/watcher/internal/ingress"
)

// arrivals subscribes to anomalies on the bus and returns a function that
// waits for the one with id and returns when it arrived.
func arrivals(b *testing.B, h *harness) func(id string) time.Time {
	b.Helper()
	ch := make(chan *nats.Msg, 1024)
	sub, err := h.bus.Conn().ChanSubscribe("rampart.anomaly.>", ch)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := h.bus.Conn().Flush(); err != nil {
		b.Fatal(err)
	}
	return func(id string) time.Time {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case m := <-ch:
				if m.Header.Get("Nats-Msg-Id") == id {
					return time.Now()
				}
			case <-timeout:
				b.Fatalf("anomaly %s did not arrive", id)
			}
		}
	}
}

// report adds the distribution of latencies to the benchmark's output.
func report(b *testing.B, lat []time.Duration, interval time.Duration) {
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	mean := sum / time.Duration(len(lat))
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(mean), "mean-ms")
	b.ReportMetric(ms(pct(0.5)), "p50-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	if interval > 0 {
		b.ReportMetric(float64(mean)/float64(interval), "mean-x-interval")
		b.ReportMetric(float64(lat[len(lat)-1])/float64(interval), "max-x-interval")
	}
}

// BenchmarkDetectionLatency measures polling detection: from the first bad
// request through the (fake) router to the anomaly arriving on the bus, as
// a multiple of the analysis interval. Each run is a new rollout whose
// window already holds 100 good requests; then 10 requests fail at once, at
// a random moment within the interval (so the phase against the ticker is
// uniform, as for real traffic). Expect about half an interval on average
// and at most one interval, plus scrape and publish time.
func BenchmarkDetectionLatency(b *testing.B) {
	for _, interval := range []time.Duration{100 * time.Millisecond, time.Second} {
		b.Run(fmt.Sprintf("interval=%s", interval), func(b *testing.B) {
			h := newHarness(b, policy.ProviderScrape, interval)
			wait := arrivals(b, h)
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				rollout := fmt.Sprintf("r%d", i)
				h.step(rollout, 0, 5)
				h.waitLive(rollout, 5)
				h.waitEvaluations(analysis.RuleErrorRate, 1) // the window is open
				h.router.Serve(policy.VersionCanary, 200, 100)
				h.waitEvaluations(analysis.RuleErrorRate, 1) // and judged healthy
				// A random phase against the ticker, not a synchronisation.
				time.Sleep(time.Duration(rand.Int64N(int64(interval))))
				first := time.Now()
				h.router.Serve(policy.VersionCanary, 503, 10)
				lat = append(lat, wait(anomaly.MetricID(rollout, analysis.RuleErrorRate)).Sub(first))
			}
			report(b, lat, interval)
		})
	}
}

// BenchmarkWebhookToAnomaly measures push detection: an Alertmanager
// webhook for the live canary, from the request being sent to the anomaly
// arriving on the bus.
func BenchmarkWebhookToAnomaly(b *testing.B) {
	h := newHarness(b, policy.ProviderScrape, time.Hour)
	wait := arrivals(b, h)
	h.step("r1", 0, 5)
	h.waitLive("r1", 5)
	labels := map[string]string{"alertname": "HighErrorRate", "app": "shop", "version": "canary"}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		fp := fmt.Sprintf("f%x", i)
		body := amBody(fp, labels, "firing")
		start := time.Now()
		code, resp := h.post(ingress.PathAlertmanager, body, bearer(amToken))
		if code != http.StatusOK || len(resp.Published) != 1 {
			b.Fatalf("%d %+v", code, resp)
		}
		lat = append(lat, wait(resp.Published[0]).Sub(start))
	}
	report(b, lat, 0)
}
