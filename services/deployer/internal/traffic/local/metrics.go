package local

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartci/rampart/pkg/policy"
)

// metrics are the router's per-version metrics: the contract with the
// watcher's scrape provider (names and labels in package policy). The app
// is a constant label, so the routers of several applications can all be
// registered on one host registry without their descriptors colliding.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // version, code
	duration *prometheus.HistogramVec // version
	weight   prometheus.Gauge
}

func newMetrics(app string, host prometheus.Registerer) (*metrics, error) {
	constLabels := prometheus.Labels{"app": app}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        policy.RouterRequests,
			Help:        "Requests through the local router, by version (stable or canary) and HTTP status code.",
			ConstLabels: constLabels,
		}, []string{"version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        policy.RouterLatency,
			Help:        "Time from receiving a request to finishing its proxied response, by version.",
			ConstLabels: constLabels,
			Buckets:     prometheus.DefBuckets,
		}, []string{"version"}),
		weight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        policy.RouterCanaryWeight,
			Help:        "Percent of requests the local router sends to the canary.",
			ConstLabels: constLabels,
		}),
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.weight}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering router metrics: %w", err)
		}
	}
	if host != nil {
		for _, c := range cs {
			if err := host.Register(c); err != nil {
				return nil, fmt.Errorf("registering router metrics for %s on the host registry: %w", app, err)
			}
		}
	}
	return m, nil
}

// instrument counts h's responses by status code and times them, under
// version.
func (m *metrics) instrument(version string, h http.Handler) http.Handler {
	l := prometheus.Labels{"version": version}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(l), h))
}

// handler serves the router's own registry.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
