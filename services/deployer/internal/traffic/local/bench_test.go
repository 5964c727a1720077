package local_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

// benchClient keeps enough idle connections that neither path pays for
// new ones.
func benchClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}

func do(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkProxyOverhead measures a request through the local router
// against the same request straight to the same upstream, alternating the
// two in one run so both see the same machine. Both slots point at the one
// upstream and the weight is 50, so the split and both versions' metrics
// are exercised. concurrency is the number of clients sending at once.
func BenchmarkProxyOverhead(b *testing.B) {
	for _, bc := range []struct {
		name        string
		concurrency int
	}{{"serial", 1}, {"concurrent-8", 8}} {
		b.Run(bc.name, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			defer up.Close()
			r := startRouter(b, up.URL, up.URL, local.Options{InitialWeight: 50})
			direct, proxied := up.URL+"/item", "http://"+r.Addr()+"/item"
			c := benchClient()
			defer c.CloseIdleConnections()

			// round sends concurrency×perClient requests to url and returns
			// how long that took.
			const perClient = 10
			round := func(url string) time.Duration {
				start := time.Now()
				var wg sync.WaitGroup
				for range bc.concurrency {
					wg.Go(func() {
						for range perClient {
							do(b, c, url)
						}
					})
				}
				wg.Wait()
				return time.Since(start)
			}
			round(direct) // warm both connection pools
			round(proxied)
			var dt, pt time.Duration
			rounds := 0
			for b.Loop() {
				dt += round(direct)
				pt += round(proxied)
				rounds++
			}
			n := float64(rounds * bc.concurrency * perClient)
			b.ReportMetric(float64(dt.Microseconds())/n, "direct-µs/req")
			b.ReportMetric(float64(pt.Microseconds())/n, "proxied-µs/req")
			b.ReportMetric(float64(pt-dt)/float64(time.Microsecond)/n, "overhead-µs/req")
			b.ReportMetric(float64(pt)/float64(dt), "ratio-to-direct")
		})
	}
}

// BenchmarkSetWeight measures a weight change (the instant part of a
// rollback), against a bare atomic store in the same run.
func BenchmarkSetWeight(b *testing.B) {
	r := startRouter(b, "http://127.0.0.1:1", "http://127.0.0.1:2", local.Options{})
	ctx := context.Background()
	var bare atomic.Int64
	var st, bt time.Duration
	i := 0
	for b.Loop() {
		// Time batches: a single call is too short for the clock.
		const batch = 1000
		start := time.Now()
		for j := range batch {
			if err := r.SetWeight(ctx, (i+j)%101); err != nil {
				b.Fatal(err)
			}
		}
		st += time.Since(start)
		start = time.Now()
		for j := range batch {
			bare.Store(int64((i + j) % 101))
		}
		bt += time.Since(start)
		i += batch
	}
	b.ReportMetric(float64(st.Nanoseconds())/float64(i), "setweight-ns")
	b.ReportMetric(float64(bt.Nanoseconds())/float64(i), "atomic-store-ns")
	b.ReportMetric(float64(st)/float64(bt), "ratio-to-atomic")
}
