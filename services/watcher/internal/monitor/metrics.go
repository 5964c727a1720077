package watcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the watcher's Prometheus metrics (rampart_watcher_*).
type metrics struct {
	evaluations    *prometheus.CounterVec
	anomalies      *prometheus.CounterVec
	webhooks       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	providerErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, liveCanaries func() float64) (*metrics, error) {
	m := &metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_watcher_evaluations_total",
			Help: "Rule evaluations of live canaries by rule and result (pass, breach, nodata).",
		}, []string{"rule", "result"}),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_watcher_anomalies_published_total",
			Help: "Anomaly events published, by origin and target (repeats of one anomaly id included; JetStream keeps one).",
		}, []string{"origin", "target"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_watcher_webhook_requests_total",
			Help: "Webhook requests by hook and HTTP status code.",
		}, []string{"hook", "code"}),
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
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rampart_watcher_live_canaries",
		Help: "Canaries the watcher currently analyses.",
	}, liveCanaries)
	for _, c := range []prometheus.Collector{m.evaluations, m.anomalies, m.webhooks, m.latency, m.providerErrors, live} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
