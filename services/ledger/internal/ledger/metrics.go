package ledger

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appended       *prometheus.CounterVec
	appendLatency  prometheus.Histogram
	appendRetries  prometheus.Counter
	checkpoints    prometheus.Counter
	duplicates     prometheus.Counter
	poison         prometheus.Counter
	expired        prometheus.Counter
	treeSize       prometheus.Gauge
	checkpointSize prometheus.Gauge
	chainIndexSize prometheus.Gauge
	foreign        prometheus.Counter
	witnessErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_ledger_entries_appended_total",
			Help: "Entries committed to the LEDGER stream, by kind (event, deadletter).",
		}, []string{"kind"}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rampart_ledger_append_latency_seconds",
			Help:    "Time from receiving a RAMPART message to its entry being committed.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		appendRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_append_retries_total",
			Help: "Failed attempts to append an entry that were retried in place.",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_checkpoints_signed_total",
			Help: "Checkpoints signed and stored in LEDGER_CHECKPOINTS.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_duplicates_skipped_total",
			Help: "Events acknowledged without a new entry because their source and id were already recorded.",
		}),
		poison: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_dead_letters_total",
			Help: "Messages the ledger terminated and dead-lettered because they are not CloudEvents.",
		}),
		foreign: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_foreign_messages_total",
			Help: "Messages found in LEDGER that this ledger did not write (skipped, not entries), counted each time the stream is read.",
		}),
		witnessErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_witness_errors_total",
			Help: "Failures to hand a signed checkpoint to a witness.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_ledger_expired_unrecorded_total",
			Help: "RAMPART messages that expired before the ledger could record them.",
		}),
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_ledger_tree_size",
			Help: "Committed entries in the Merkle tree.",
		}),
		checkpointSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_ledger_checkpoint_size",
			Help: "Tree size of the latest signed checkpoint.",
		}),
		chainIndexSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_ledger_chain_index_size",
			Help: "Entries the chain index in LEDGER_CHAINS is complete for (its latest mark).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.appended, m.appendLatency, m.appendRetries, m.checkpoints,
		m.duplicates, m.poison, m.expired, m.treeSize, m.checkpointSize, m.chainIndexSize, m.foreign, m.witnessErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering ledger metrics: %w", err)
		}
	}
	return m, nil
}
