package demo

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// rollbackRuns is how many rollbacks one benchmark run measures.
const rollbackRuns = 200

// BenchmarkRollbackLatency measures, on the embedded default, the time from
// an Alertmanager webhook about a live canary being sent to the canary's
// weight being 0 at the local router: webhook → watcher → anomaly on
// JetStream → deployer → router. Each of the runs is a fresh canary at 5%.
// The baseline is a JetStream publish round trip on the same server in the
// same run.
func BenchmarkRollbackLatency(b *testing.B) {
	e, err := Start(b.Context(), Config{DataDir: b.TempDir(), Pause: time.Hour, Interval: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := b.Context()
	_, _, a, err := e.PushAndWait(ctx, Image{Version: "v0"}, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	if err := e.PromoteThrough(ctx, a, 4, 20*time.Second); err != nil {
		b.Fatal(err)
	}

	var samples []time.Duration
	for b.Loop() {
		for i := range rollbackRuns {
			_, _, a, err := e.PushAndWait(ctx, Image{Version: fmt.Sprintf("v%d", len(samples)+1)}, 30*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.WaitStep(ctx, a, 0, 20*time.Second); err != nil {
				b.Fatal(err)
			}
			zero := make(chan time.Time, 1)
			stop := make(chan struct{})
			go func() {
				// Poll the router's weight every 100µs: fine enough to
				// measure milliseconds without taking a core from the mesh.
				for {
					if w, _ := e.Mesh.Deployer.Weight(App); w == 0 {
						zero <- time.Now()
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Microsecond):
					}
				}
			}()
			// The watcher learns of the canary from its step event; until
			// then an alert matches nothing live and is only recorded. Send
			// again (a new alert) until one is about this rollout, and time
			// the one that is.
			var start time.Time
			var alertErr error
			try := 0
			if err := waitUntil(ctx, 10*time.Second, "the watcher to see rollout "+a.RolloutID+" live", func() bool {
				try++
				start = time.Now()
				ids, err := e.Alert(ctx, fmt.Sprintf("fp%04dx%d", i, try), start)
				alertErr = err
				return err != nil || len(ids) == 1 && strings.HasSuffix(ids[0], ":"+a.RolloutID)
			}); err != nil {
				b.Fatal(err)
			}
			if alertErr != nil {
				b.Fatal(alertErr)
			}
			select {
			case at := <-zero:
				samples = append(samples, at.Sub(start))
			case <-time.After(10 * time.Second):
				close(stop)
				b.Fatalf("weight still %v 10s after the alert for %s", must(e.Mesh.Deployer.Weight(App)), a.RolloutID)
			}
			if _, err := e.WaitEnd(ctx, a, 20*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	}

	// Baseline: a JetStream publish acknowledged by the same server.
	js, err := jetstream.New(e.nc)
	if err != nil {
		b.Fatal(err)
	}
	var pubs []time.Duration
	for i := range rollbackRuns {
		start := time.Now()
		if _, err := js.Publish(ctx, "rampart.bench._", fmt.Appendf(nil, "%d", i)); err != nil {
			b.Fatal(err)
		}
		pubs = append(pubs, time.Since(start))
	}

	slices.Sort(samples)
	slices.Sort(pubs)
	q := func(s []time.Duration, p float64) float64 {
		return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(samples)), "rollbacks")
	b.ReportMetric(q(samples, 0.50), "p50-ms")
	b.ReportMetric(q(samples, 0.99), "p99-ms")
	b.ReportMetric(float64(samples[len(samples)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(q(pubs, 0.50), "publish-p50-ms")
	b.ReportMetric(q(samples, 0.50)/q(pubs, 0.50), "p50/publish")
}

func must(w int, _ bool) int { return w }
