package imagescan

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pipeline's Prometheus series, rampart_scanner_*.
type metrics struct {
	scans       *prometheus.CounterVec   // Trivy runs by kind (image, sbom) and outcome
	verdicts    *prometheus.CounterVec   // verdicts published by outcome and origin (scan, cache, rescan)
	cacheHits   prometheus.Counter       // verdicts served without calling Trivy
	scanSeconds *prometheus.HistogramVec // Trivy run time by kind
	anomalies   prometheus.Counter       // anomalies from re-scans of live releases
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_scanner_scans_total",
			Help: "Trivy scans by kind (image: pulled and scanned; sbom: stored SBOM re-scanned) and outcome (pass, blocked, error).",
		}, []string{"kind", "outcome"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_scanner_verdicts_total",
			Help: "Signed verdicts published, by outcome and origin (scan, cache, rescan).",
		}, []string{"outcome", "origin"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_scanner_cache_hits_total",
			Help: "Pushes whose digest was already scanned against the current vulnerability DB: the verdict came from the cache, Trivy was not called.",
		}),
		scanSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_scanner_scan_duration_seconds",
			Help:    "Time Trivy took per scan (image: pull included), by kind.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 12), // 2 ms .. ~2 min
		}, []string{"kind"}),
		anomalies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_scanner_rescan_anomalies_total",
			Help: "Anomalies published because a live release has blocking findings after a vulnerability DB update.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.scans, m.verdicts, m.cacheHits, m.scanSeconds, m.anomalies} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("imagescan: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
