package analysis

import "github.com/prometheus/client_golang/prometheus"

// NewEvaluations returns the counter of rule evaluations of live canaries,
// rampart_watcher_evaluations_total{rule, result}, unregistered: the
// analysis loop counts the metric rules on it, the alert ingress the SIEM
// rule.
func NewEvaluations() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_watcher_evaluations_total",
		Help: "Rule evaluations of live canaries by rule and result (pass, breach, nodata).",
	}, []string{"rule", "result"})
}
