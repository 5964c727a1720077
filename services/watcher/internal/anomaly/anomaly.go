// Package anomaly publishes the watcher's decisions: an anomaly event with an
// id derived from what caused it, so that seeing the same cause again (a
// breach judged every interval, an alert delivered twice, a restart) is one
// event, which JetStream drops as a duplicate.
package anomaly

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

// Source is the CloudEvents source of the watcher's events.
const Source = "/rampart/watcher"

// MetricID is the id of the anomaly a metric rule raises against a rollout:
// one per rollout and rule, however often the breach is seen.
func MetricID(rollout, rule string) string { return "anomaly:" + rollout + ":" + rule }

// Publisher publishes anomalies on the bus and counts them.
type Publisher struct {
	bus       *bus.Bus
	published *prometheus.CounterVec
}

// NewPublisher registers rampart_watcher_anomalies_published_total on reg.
func NewPublisher(b *bus.Bus, reg prometheus.Registerer) (*Publisher, error) {
	published := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_watcher_anomalies_published_total",
		Help: "Anomaly events published, by origin and target (repeats of one anomaly id included; JetStream keeps one).",
	}, []string{"origin", "target"})
	if err := reg.Register(published); err != nil {
		return nil, fmt.Errorf("anomaly metrics: %w", err)
	}
	return &Publisher{bus: b, published: published}, nil
}

// Publish publishes a with id; c, when not nil, is the canary it is
// against, which gives the chain and the cause. It outlives ctx by up to 5s
// so that a decision taken is not lost to a request or loop ending.
func (p *Publisher) Publish(ctx context.Context, id string, c *live.Canary, a events.Anomaly) error {
	m := events.Meta{ID: id, Source: Source, App: a.App, Time: a.DetectedAt}
	if c != nil {
		m.ChainID, m.CausedBy = c.ChainID, c.StepEventID
	}
	ev, err := events.NewAnomaly(m, a)
	if err != nil {
		return fmt.Errorf("build anomaly %s: %w", id, err)
	}
	if c != nil {
		bus.SetTraceParent(&ev, c.TraceParent) // when ctx has no span of its own
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := p.bus.Publish(pctx, ev); err != nil {
		return err
	}
	p.published.WithLabelValues(a.Origin, a.Target).Inc()
	return nil
}

// AnalysisID is the id of a step's analysis event: one per rollout and step.
func AnalysisID(rollout string, step int) string { return fmt.Sprintf("analysis:%s:%d", rollout, step) }

// PublishAnalysis publishes what a canary step's analysis measured (the
// evidence it passed or failed on), against canary c. Like Publish it
// outlives ctx by up to 5s.
func (p *Publisher) PublishAnalysis(ctx context.Context, c live.Canary, a events.Analysis) error {
	m := events.Meta{ID: AnalysisID(a.RolloutID, a.Step), Source: Source, App: a.App, Time: a.To,
		ChainID: c.ChainID, CausedBy: c.StepEventID}
	ev, err := events.NewCanaryAnalyzed(m, a)
	if err != nil {
		return fmt.Errorf("build analysis of %s step %d: %w", a.RolloutID, a.Step, err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err = p.bus.Publish(pctx, ev)
	return err
}
