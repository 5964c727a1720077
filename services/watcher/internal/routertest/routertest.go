// Package routertest fakes, for tests, the metrics side of the deployer's
// local router: its /-/metrics with rampart_router_requests_total by app,
// version and code, and a stable and a canary upstream each serving its own
// /metrics with a memory gauge. The counters are real client_golang metrics
// served by promhttp, so the text the watcher parses is what a router
// serves.
package routertest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartci/rampart/pkg/policy"
)

// Router is a fake router's metrics and its two upstreams' memory gauges.
type Router struct {
	App                  string
	Requests             *prometheus.CounterVec
	StableMem, CanaryMem prometheus.Gauge
	Metrics              *httptest.Server // /-/metrics
	StableSrv, CanarySrv *httptest.Server // /metrics
}

// New starts the three servers, closed when the test ends.
func New(t testing.TB, app string) *Router {
	t.Helper()
	r := &Router{App: app}
	reg := prometheus.NewRegistry()
	r.Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: policy.RouterRequests, Help: "Requests through the router by app, version and status code.",
	}, []string{"app", "version", "code"})
	reg.MustRegister(r.Requests)
	mux := http.NewServeMux()
	mux.Handle(policy.RouterMetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	r.Metrics = httptest.NewServer(mux)
	t.Cleanup(r.Metrics.Close)

	upstream := func() (*httptest.Server, prometheus.Gauge) {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: policy.DefaultMemory.Metric, Help: "Resident memory in bytes."})
		reg.MustRegister(g)
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		s := httptest.NewServer(mux)
		t.Cleanup(s.Close)
		return s, g
	}
	r.StableSrv, r.StableMem = upstream()
	r.CanarySrv, r.CanaryMem = upstream()
	return r
}

// Serve counts n requests answered code by version (policy.VersionStable or
// policy.VersionCanary).
func (r *Router) Serve(version string, code, n int) {
	r.Requests.WithLabelValues(r.App, version, strconv.Itoa(code)).Add(float64(n))
}

// Local is the router as the policy names it.
func (r *Router) Local() *policy.LocalRouter {
	return &policy.LocalRouter{
		Listen: strings.TrimPrefix(r.Metrics.URL, "http://"),
		Stable: r.StableSrv.URL,
		Canary: r.CanarySrv.URL,
	}
}

// Policy is a valid policy application analysed by provider through this
// router, with the default rules and the SIEM rule on.
func (r *Router) Policy(provider string) policy.App {
	return policy.App{
		Name: r.App, Image: "registry.example.com/" + r.App, Environment: "prod",
		Router: policy.Router{Type: policy.RouterLocal, Local: r.Local()},
		Canary: policy.Canary{Steps: policy.DefaultSteps, Pause: policy.DefaultPause},
		Analysis: policy.Analysis{
			Provider:  provider,
			Interval:  policy.DefaultInterval,
			ErrorRate: policy.DefaultErrorRate,
			Memory:    policy.DefaultMemory,
			SIEM:      policy.SIEMRule{Enabled: true},
		},
	}
}
