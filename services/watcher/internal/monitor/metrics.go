package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the analysis loop's own metrics; rule evaluations are counted
// on Config.Evaluations, shared with the alert ingress.
type metrics struct {
	latency        *prometheus.HistogramVec
	providerErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_watcher_evaluation_duration_seconds",
			Help:    "Time to read a canary's metrics and judge them, by provider.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10),
		}, []string{"provider"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_watcher_provider_errors_total",
			Help: "Failed metric reads by provider; each is also counted as a nodata evaluation.",
		}, []string{"provider"}),
	}
	for _, c := range []prometheus.Collector{m.latency, m.providerErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
