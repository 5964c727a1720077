package local_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/traffic"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

var _ traffic.Router = (*local.Router)(nil)

// At weight w, every 100 consecutive requests send exactly w to the canary;
// at 0 the canary sees nothing and at 100 stable sees nothing.
func TestWeightSplitsRequestsExactly(t *testing.T) {
	for _, w := range []int{0, 1, 5, 25, 50, 75, 99, 100} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
			r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{})
			if err := r.SetWeight(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			c := &http.Client{}
			base := "http://" + r.Addr()
			for i := range 200 {
				got := get(t, c, base+"/item")
				want := map[string]string{"stable": "v1", "canary": "v2"}[got.version]
				if got.status != 200 || want == "" || got.body != want {
					t.Fatalf("request %d: %+v", i, got)
				}
			}
			if s, c := stable.hits.Load(), canary.hits.Load(); c != int64(2*w) || s != int64(200-2*w) {
				t.Fatalf("weight %d: stable %d, canary %d requests; want %d and %d", w, s, c, 200-2*w, 2*w)
			}
		})
	}
}

// A weight change decides the very next request.
func TestWeightChangeAppliesToNextRequest(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{})
	c := &http.Client{}
	base := "http://" + r.Addr()
	ctx := context.Background()
	for i := range 50 {
		w, want := 0, "v1"
		if i%2 == 1 {
			w, want = 100, "v2"
		}
		if err := r.SetWeight(ctx, w); err != nil {
			t.Fatal(err)
		}
		if r.Weight() != w {
			t.Fatalf("Weight() = %d after SetWeight(%d)", r.Weight(), w)
		}
		if got := get(t, c, base+"/"); got.body != want {
			t.Fatalf("request %d at weight %d went to %q", i, w, got.body)
		}
	}
	if stable.hits.Load() != 25 || canary.hits.Load() != 25 {
		t.Fatalf("stable %d, canary %d", stable.hits.Load(), canary.hits.Load())
	}
}

func TestSetWeightRejectsOutOfRange(t *testing.T) {
	r, err := local.New("shop", policy.LocalRouter{Listen: "127.0.0.1:0", Stable: "http://a", Canary: "http://b"}, local.Options{InitialWeight: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{-1, 101, 1000} {
		if err := r.SetWeight(context.Background(), w); !errors.Is(err, traffic.ErrInvalidWeight) {
			t.Errorf("SetWeight(%d) = %v, want ErrInvalidWeight", w, err)
		}
	}
	if r.Weight() != 5 {
		t.Fatalf("weight changed to %d by rejected calls", r.Weight())
	}
	if _, err := local.New("shop", policy.LocalRouter{Stable: "http://a", Canary: "http://b"}, local.Options{InitialWeight: 101}); !errors.Is(err, traffic.ErrInvalidWeight) {
		t.Fatalf("New with initial weight 101: %v", err)
	}
}

func TestNewRejectsBadUpstreams(t *testing.T) {
	for _, tc := range []struct{ stable, canary string }{
		{"", "http://b"}, {"http://a", "ftp://b"}, {"a:80", "http://b"}, {"http://a", "http://%zz"},
	} {
		if _, err := local.New("shop", policy.LocalRouter{Stable: tc.stable, Canary: tc.canary}, local.Options{}); err == nil {
			t.Errorf("New(stable %q, canary %q) succeeded", tc.stable, tc.canary)
		}
	}
}

// Paths under /-/ are the router's own and never reach an upstream.
func TestReservedPathsAreNotProxied(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{InitialWeight: 50})
	c := &http.Client{}
	base := "http://" + r.Addr()
	if got := get(t, c, base+local.HealthzPath); got.status != 200 || got.body != "ok\n" {
		t.Fatalf("healthz: %+v", got)
	}
	if got := get(t, c, base+policy.RouterMetricsPath); got.status != 200 || !strings.Contains(got.body, policy.RouterCanaryWeight) {
		t.Fatalf("metrics: %+v", got)
	}
	if got := get(t, c, base+"/-/anything"); got.status != 404 {
		t.Fatalf("/-/anything: %+v", got)
	}
	if n := stable.hits.Load() + canary.hits.Load(); n != 0 {
		t.Fatalf("%d requests for /-/ paths reached an upstream", n)
	}
}

// The proxy keeps the path and query, joins the upstream's base path and
// says who the client was.
func TestProxiesPathQueryAndForwardedHeaders(t *testing.T) {
	stable := newUpstream(t, "v1", 200)
	r := startRouter(t, stable.srv.URL+"/base", stable.srv.URL, local.Options{})
	get(t, &http.Client{}, "http://"+r.Addr()+"/cart/items?id=7")
	req := stable.last.Load()
	if req.URL.Path != "/base/cart/items" || req.URL.RawQuery != "id=7" {
		t.Fatalf("upstream saw %s", req.URL)
	}
	if req.Header.Get("X-Forwarded-For") != "127.0.0.1" || req.Header.Get("X-Forwarded-Host") != r.Addr() {
		t.Fatalf("forwarded headers: %v", req.Header)
	}
}

// The metrics contract: requests by version and code, latency by version,
// the canary weight; served at /-/metrics and on the host's registry.
func TestMetricsByVersion(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 503)
	host := prometheus.NewRegistry()
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{InitialWeight: 25, Registerer: host})
	c := &http.Client{}
	for range 100 {
		get(t, c, "http://"+r.Addr()+"/")
	}
	fams := scrape(t, "http://"+r.Addr()+policy.RouterMetricsPath)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{policy.RouterRequests, map[string]string{"app": "shop", "version": "stable", "code": "200"}, 75},
		{policy.RouterRequests, map[string]string{"app": "shop", "version": "canary", "code": "503"}, 25},
		{policy.RouterLatency, map[string]string{"app": "shop", "version": "stable"}, 75},
		{policy.RouterLatency, map[string]string{"app": "shop", "version": "canary"}, 25},
		{policy.RouterCanaryWeight, map[string]string{"app": "shop"}, 25},
	} {
		if got, ok := sample(fams, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if _, ok := sample(fams, policy.RouterRequests, map[string]string{"app": "shop", "version": "canary", "code": "200"}); ok {
		t.Errorf("a canary 200 series exists though the canary only answers 503")
	}

	if err := r.SetWeight(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	// The host registry holds the same collectors.
	hostFams, err := host.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range hostFams {
		if f.GetName() == policy.RouterCanaryWeight {
			found = true
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 0 {
				t.Errorf("host registry weight = %v, want 0", v)
			}
		}
	}
	if !found {
		t.Errorf("host registry lacks %s", policy.RouterCanaryWeight)
	}
}

// Routers of several applications share a host registry; one application
// registered twice is an error.
func TestHostRegistryPerApp(t *testing.T) {
	host := prometheus.NewRegistry()
	conf := policy.LocalRouter{Listen: "127.0.0.1:0", Stable: "http://a", Canary: "http://b"}
	for _, app := range []string{"shop", "cart"} {
		if _, err := local.New(app, conf, local.Options{Registerer: host}); err != nil {
			t.Fatalf("router for %s: %v", app, err)
		}
	}
	if _, err := local.New("shop", conf, local.Options{Registerer: host}); err == nil {
		t.Fatal("a second router for shop registered on the same host registry")
	}
}

// An upstream that refuses connections becomes a 502 counted against its
// version.
func TestUpstreamDownIs502ForThatVersion(t *testing.T) {
	stable := newUpstream(t, "v1", 200)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r := startRouter(t, stable.srv.URL, dead, local.Options{InitialWeight: 50})
	c := &http.Client{}
	codes := map[string]int{}
	for range 10 {
		got := get(t, c, "http://"+r.Addr()+"/")
		codes[fmt.Sprintf("%s %d", got.version, got.status)]++
	}
	if codes["stable 200"] != 5 || codes["canary 502"] != 5 {
		t.Fatalf("responses: %v", codes)
	}
	fams := scrape(t, "http://"+r.Addr()+policy.RouterMetricsPath)
	if v, _ := sample(fams, policy.RouterRequests, map[string]string{"app": "shop", "version": "canary", "code": "502"}); v != 5 {
		t.Fatalf("canary 502s counted: %v, want 5", v)
	}
}

// A client that gives up is recorded as 499, not as a 5xx of the upstream.
func TestClientGoneIsNotA5xx(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	defer close(release)
	r := startRouter(t, slow.URL, slow.URL, local.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Addr()+"/", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request did not time out")
	}
	labels := map[string]string{"app": "shop", "version": "stable", "code": fmt.Sprint(local.StatusClientClosedRequest)}
	checkFor(t, 5*time.Second, func() error {
		fams := scrape(t, "http://"+r.Addr()+policy.RouterMetricsPath)
		if v, _ := sample(fams, policy.RouterRequests, labels); v != 1 {
			return fmt.Errorf("%s%v = %v, want 1", policy.RouterRequests, labels, v)
		}
		if _, ok := sample(fams, policy.RouterRequests, map[string]string{"app": "shop", "version": "stable", "code": "502"}); ok {
			return errors.New("the abandoned request was counted as a 502")
		}
		return nil
	})
}

func TestSetUpstreamsRepointsSlots(t *testing.T) {
	v1, v2, v3 := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200), newUpstream(t, "v3", 200)
	r := startRouter(t, v1.srv.URL, v2.srv.URL, local.Options{InitialWeight: 100})
	c := &http.Client{}
	base := "http://" + r.Addr()
	if got := get(t, c, base); got.body != "v2" {
		t.Fatalf("before: %+v", got)
	}
	// v2 completed: it becomes stable, v3 the next canary, the weight stays.
	if err := r.SetUpstreams(v2.srv.URL, v3.srv.URL); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, base); got.body != "v3" || got.version != "canary" {
		t.Fatalf("after: %+v", got)
	}
	if err := r.SetWeight(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, base); got.body != "v2" || got.version != "stable" {
		t.Fatalf("at 0: %+v", got)
	}
	if err := r.SetUpstreams("http://ok", "not a url"); err == nil {
		t.Fatal("SetUpstreams accepted a bad URL")
	}
	if s, cn := r.Upstreams(); s != v2.srv.URL || cn != v3.srv.URL {
		t.Fatalf("a failed SetUpstreams changed the upstreams to %s, %s", s, cn)
	}
}

// Weight changes race with traffic without tearing (run with -race): every
// request is answered by one of the two versions, and the last weight set
// is the one in force.
func TestConcurrentWeightChangesAndTraffic(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{})
	c := &http.Client{}
	base := "http://" + r.Addr()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for w := 0; ; w = (w + 7) % 101 {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.SetWeight(context.Background(), w); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 50 {
				resp, err := c.Get(base + "/")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	checkFor(t, 10*time.Second, func() error {
		if n := stable.hits.Load() + canary.hits.Load(); n < 200 {
			return fmt.Errorf("%d of 200 requests done", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if err := r.SetWeight(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	before := canary.hits.Load()
	for range 20 {
		get(t, c, base+"/")
	}
	if canary.hits.Load() != before {
		t.Fatal("the canary got requests at weight 0")
	}
}

func TestLifecycle(t *testing.T) {
	r, err := local.New("shop", policy.LocalRouter{Listen: "127.0.0.1:0", Stable: "http://a", Canary: "http://b"}, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr() != "" {
		t.Fatalf("Addr before Start = %q", r.Addr())
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	addr := r.Addr()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + local.HealthzPath); err == nil {
		t.Fatal("still serving after Close")
	}
	taken, err := local.New("shop", policy.LocalRouter{Listen: addr, Stable: "http://a", Canary: "http://b"}, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot re-listen on %s: %v", addr, err)
	}
	defer ln.Close()
	if err := taken.Start(ctx); err == nil {
		taken.Close()
		t.Fatal("Start on a taken address succeeded")
	}
}
