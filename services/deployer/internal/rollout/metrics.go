package rollout

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rollouts           *prometheus.CounterVec
	weight             *prometheus.GaugeVec
	rollbackLatency    prometheus.Histogram
	verdictsRefused    *prometheus.CounterVec
	duplicateAnomalies prometheus.Counter
	reconcile          *prometheus.HistogramVec
	stages             *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_deployer_rollouts_total", Help: "Rollouts by what happened: started, completed, rolledback.",
		}, []string{"result"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_deployer_canary_weight", Help: "Canary traffic weight in percent, by application.",
		}, []string{"app"}),
		rollbackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rampart_deployer_rollback_seconds",
			Help:    "From an anomaly reaching the deployer to the canary weight being 0.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		verdictsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_deployer_verdicts_refused_total", Help: "Scan verdicts refused, by reason: unsigned, bad_signature.",
		}, []string{"reason"}),
		duplicateAnomalies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_deployer_duplicate_anomalies_total", Help: "Anomalies for rollouts that had already ended.",
		}),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_deployer_reconcile_seconds",
			Help:    "Duration of an application owner's passes, by result: success, requeue, empty, error.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"result"}),
		stages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_deployer_stage_candidates_total", Help: "Candidates in pre-production stages, by stage and what happened: deployed, passed, stopped, failed (never served by its stage).",
		}, []string{"stage", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rollouts, m.weight, m.rollbackLatency, m.verdictsRefused, m.duplicateAnomalies, m.reconcile, m.stages} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
