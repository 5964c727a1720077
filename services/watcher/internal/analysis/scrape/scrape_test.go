package scrape_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/scrape"
	"github.com/rampartci/rampart/services/watcher/internal/routertest"
)

func TestWindowCountsFromTheBaseline(t *testing.T) {
	r := routertest.New(t, "shop")
	// Before the step: traffic the window must not count, for this app and another.
	r.Serve(policy.VersionCanary, 200, 500)
	r.Serve(policy.VersionCanary, 503, 50)
	r.Serve(policy.VersionStable, 500, 7)
	r.Requests.WithLabelValues("cart", policy.VersionCanary, "500").Add(99)
	r.StableMem.Set(100 << 20)
	r.CanaryMem.Set(150 << 20)

	p := scrape.New(nil)
	target := analysis.Target{App: "shop", Since: time.Now(), Policy: r.Policy(policy.ProviderScrape)}
	win, err := p.Open(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	got, err := win.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 0 || got.Errors != 0 {
		t.Fatalf("right after the baseline: %+v, want no requests", got)
	}
	if !got.HasMemory || got.CanaryMemory != 150<<20 || got.StableMemory != 100<<20 {
		t.Fatalf("memory: %+v", got)
	}

	r.Serve(policy.VersionCanary, 200, 90)
	r.Serve(policy.VersionCanary, 500, 6)
	r.Serve(policy.VersionCanary, 502, 4)
	r.Serve(policy.VersionCanary, 404, 3) // a 4xx is the client's error, not the canary's
	r.Serve(policy.VersionStable, 500, 1000)
	got, err = win.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 103 || got.Errors != 10 {
		t.Fatalf("got %v requests, %v errors; want 103 and 10", got.Requests, got.Errors)
	}
	if v := analysis.ErrorRate(got, policy.DefaultErrorRate); v.Result != analysis.Breach {
		t.Fatalf("verdict %+v, want a breach", v)
	}
}

func TestNoSeriesYetIsZeroRequests(t *testing.T) {
	r := routertest.New(t, "shop")
	win, err := scrape.New(nil).Open(t.Context(), analysis.Target{App: "shop", Policy: r.Policy(policy.ProviderScrape)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := win.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 0 {
		t.Fatalf("%+v", got)
	}
	if v := analysis.ErrorRate(got, policy.DefaultErrorRate); v.Result != analysis.NoData {
		t.Fatalf("verdict %+v, want no data", v)
	}
}

func TestMissingMemoryGaugeIsNoData(t *testing.T) {
	r := routertest.New(t, "shop")
	app := r.Policy(policy.ProviderScrape)
	app.Analysis.Memory.Metric = "app_heap_bytes"
	win, err := scrape.New(nil).Open(t.Context(), analysis.Target{App: "shop", Policy: app})
	if err != nil {
		t.Fatal(err)
	}
	got, err := win.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.HasMemory || !strings.Contains(got.MemoryReason, "app_heap_bytes") {
		t.Fatalf("%+v", got)
	}
}

func TestCounterResetCountsFromZero(t *testing.T) {
	r := routertest.New(t, "shop")
	r.Serve(policy.VersionCanary, 200, 1000)
	win, err := scrape.New(nil).Open(t.Context(), analysis.Target{App: "shop", Policy: r.Policy(policy.ProviderScrape)})
	if err != nil {
		t.Fatal(err)
	}
	r.Requests.Reset() // the router restarted
	r.Serve(policy.VersionCanary, 200, 30)
	r.Serve(policy.VersionCanary, 500, 5)
	got, err := win.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 35 || got.Errors != 5 {
		t.Fatalf("%+v, want 35 requests and 5 errors", got)
	}
}

func TestRouterDownIsAnError(t *testing.T) {
	r := routertest.New(t, "shop")
	app := r.Policy(policy.ProviderScrape)
	r.Metrics.Close()
	if _, err := scrape.New(nil).Open(t.Context(), analysis.Target{App: "shop", Policy: app}); err == nil {
		t.Fatal("opened a window on a router that is down")
	}
	app.Router.Local = nil
	if _, err := scrape.New(nil).Open(t.Context(), analysis.Target{App: "shop", Policy: app}); err == nil {
		t.Fatal("opened a window without a local router")
	}
}

func TestDecodeText(t *testing.T) {
	in := `# TYPE rampart_router_requests_total counter
rampart_router_requests_total{app="shop",version="canary",code="200"} 12
rampart_router_requests_total{app="shop",version="canary",code="500"} 3
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.048576e+06
`
	fams, err := scrape.Decode(strings.NewReader(in), expfmt.FmtUnknown)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fams[policy.RouterRequests].GetMetric()); n != 2 {
		t.Fatalf("%d request series", n)
	}
	if _, err := scrape.Decode(strings.NewReader("not metrics {{{"), expfmt.FmtText); err == nil {
		t.Fatal("decoded garbage")
	}
}
