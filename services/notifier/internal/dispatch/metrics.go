package dispatch

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Notification results, the "result" label.
const (
	resultSent    = "sent"
	resultFailed  = "failed"  // permanently: the message is dead-lettered
	resultRetried = "retried" // will be tried again on redelivery
)

// Metrics are the notifier's Prometheus metrics.
type Metrics struct {
	notifications *prometheus.CounterVec
	retries       *prometheus.CounterVec
	reportBuild   prometheus.Histogram
	ledgerWait    prometheus.Histogram
	duplicates    prometheus.Counter
}

// NewMetrics registers the metrics on reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_notifier_notifications_total",
			Help: "Notifications by channel (pagerduty, slack, event), what they were about (rollback, anomaly, scan, release) and result (sent, failed, retried).",
		}, []string{"channel", "about", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_notifier_delivery_retries_total",
			Help: "Failed delivery attempts that were retried in place (429, 5xx, network), by channel.",
		}, []string{"channel"}),
		reportBuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rampart_notifier_report_build_seconds",
			Help:    "Time to build and store a rollback report, including the wait for the ledger to record the rollback.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		ledgerWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rampart_notifier_ledger_wait_seconds",
			Help:    "Time from handling a rollback to finding it in the ledger's chain.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_notifier_duplicate_rollbacks_total",
			Help: "Rollbacks acknowledged without notifying because their rollout was already notified.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.notifications, m.retries, m.reportBuild, m.ledgerWait, m.duplicates} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register notifier metrics: %w", err)
		}
	}
	return m, nil
}
