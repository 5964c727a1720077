// Package watcher is the watcher service: it learns the live canaries from
// canary-step, rollback and release events, judges each live canary's
// metrics every analysis interval, turns firing Alertmanager and SIEM alerts
// into anomalies at once, and publishes every anomaly with an id derived
// from what caused it, so that a repeat is one event.
//
// # State and restarts
//
// What is live is kept in memory only. The durable consumer alone could not
// rebuild it: it redelivers only what was not acknowledged, and a canary
// step is acknowledged as soon as it is applied, so after a restart the
// durable would resume after the step of a canary that is still live. So
// Start first reads the RAMPART stream's last canary-step, rollback and
// release event of every application (an ordered consumer delivering the
// last message per subject), which is exactly what decides what is live
// now, and only then resumes the durable consumer. Every application's set
// remembers the stream sequence of the last event applied, so the durable's
// backlog of events already seen in that snapshot (delivered, not yet acked
// when the old process died) changes nothing, and a brand-new durable that
// starts at the beginning of the stream does not replay old canaries.
//
// What a restart costs: the scrape provider's baseline is taken again when
// the restarted watcher opens the window, so requests served between the
// step's start and the restart are not in the ratio (the old process judged
// them every interval); the PromQL provider's window starts at the step
// event's time and loses nothing. Anomaly ids are deterministic
// (anomaly:<rollout>:<rule>), so a breach found again after a restart is the
// same event: JetStream drops it within its duplicate window and the
// deployer acts on an anomaly once in any case.
//
// Replicas: the durable consumer is shared by the processes that use it, so
// each would see only some events. Run one watcher per bus (it is cheap), or
// give each replica its own durable name.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/promql"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/scrape"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

// Source is the CloudEvents source of the watcher's events.
const Source = "/rampart/watcher"

// Config configures a Watcher.
type Config struct {
	Bus *bus.Bus
	// Consumer is the durable consumer of canary-step, rollback and release
	// events.
	Consumer bus.ConsumerOptions
	// Policy holds rampart.yaml. Nil, or an application it does not name,
	// means no metric analysis for that application (webhooks still apply).
	Policy *policy.Store
	// Providers by policy provider name; nil means scrape and prometheus
	// over HTTP with a 10s client timeout.
	Providers map[string]analysis.Provider
	// Interval, when positive, replaces every application's analysis
	// interval. The app package keeps it at 1s or more; tests go lower.
	Interval time.Duration
	// Alertmanager is the credential /hooks/alertmanager requires; zero
	// rejects every request.
	Alertmanager hooks.Auth
	// SIEMSecret keys /hooks/siem signatures; empty rejects every request.
	SIEMSecret []byte
	// MaxBody bounds webhook bodies (default hooks.MaxBody).
	MaxBody    int64
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Watcher is the running service.
type Watcher struct {
	cfg     Config
	log     *slog.Logger
	live    *live.Set
	metrics *metrics
	mux     *http.ServeMux

	runCtx context.Context
	cancel context.CancelFunc
	cons   *bus.Consumer
	ready  atomic.Bool

	// mu guards loops; it is held while a replaced loop finishes, so the
	// loops themselves never take it.
	mu    sync.Mutex
	loops map[string]*loop // by application
	wg    sync.WaitGroup

	repMu    sync.Mutex
	reported map[string]map[string]bool // metric rules that published, by rollout

	alerts *alertMemory
}

// loop is one canary step's analysis goroutine.
type loop struct {
	canary live.Canary
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and registers the metrics.
func New(cfg Config) (*Watcher, error) {
	if cfg.Bus == nil {
		return nil, errors.New("watcher: a bus is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = hooks.MaxBody
	}
	if cfg.Providers == nil {
		client := &http.Client{Timeout: 10 * time.Second}
		cfg.Providers = map[string]analysis.Provider{
			policy.ProviderScrape:     scrape.New(client),
			policy.ProviderPrometheus: promql.New(client),
		}
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger, live: live.NewSet(), loops: map[string]*loop{}, reported: map[string]map[string]bool{},
		alerts: newAlertMemory(time.Hour, 10000)}
	m, err := newMetrics(cfg.Registerer, func() float64 { return float64(len(w.live.Canaries())) })
	if err != nil {
		return nil, fmt.Errorf("watcher metrics: %w", err)
	}
	w.metrics = m
	w.mux = http.NewServeMux()
	w.Routes(w.mux)
	return w, nil
}

// Start rebuilds what is live from the stream, then consumes the durable.
// The analysis goroutines outlive ctx; Stop ends them.
func (w *Watcher) Start(ctx context.Context) error {
	w.runCtx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n, err := w.rebuild(ctx)
	if err != nil {
		w.cancel()
		return err
	}
	w.log.Info("live state rebuilt from the stream", "events", n, "live_canaries", len(w.live.Canaries()))
	w.cons, err = w.cfg.Bus.Consume(w.runCtx, w.cfg.Consumer, w.handle)
	if err != nil {
		w.cancel()
		w.stopLoops()
		return err
	}
	w.ready.Store(true)
	return nil
}

// rebuild applies the last canary-step, rollback and release event of every
// application, in stream order.
func (w *Watcher) rebuild(ctx context.Context) (int, error) {
	js := w.cfg.Bus.JetStream()
	cons, err := js.OrderedConsumer(ctx, bus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: w.cfg.Consumer.FilterSubjects,
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild live state: %w", err)
	}
	pending := cons.CachedInfo().NumPending
	type item struct {
		seq uint64
		msg jetstream.Msg
	}
	var items []item
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, fmt.Errorf("rebuild live state: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return 0, fmt.Errorf("rebuild live state: %w", err)
			}
			items = append(items, item{meta.Sequence.Stream, msg})
			pending = meta.NumPending
		}
		if err := batch.Error(); err != nil {
			return 0, fmt.Errorf("rebuild live state: %w", err)
		}
		if got == 0 {
			return 0, errors.New("rebuild live state: the stream delivered nothing before the deadline")
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	for _, it := range items {
		ev, err := events.FromMsg(it.msg.Headers(), it.msg.Data())
		if err == nil {
			err = w.apply(ev, it.seq)
		}
		if err != nil {
			// The durable consumer dead-letters it; here it is skipped.
			w.log.Warn("rebuild: skipping an unreadable event", "subject", it.msg.Subject(), "seq", it.seq, "err", err)
		}
	}
	return len(items), nil
}

// handle is the durable consumer's handler: an event that cannot be read is
// poison; everything else is applied in memory and acknowledged.
func (w *Watcher) handle(_ context.Context, d bus.Delivery) error {
	if err := w.apply(d.Event, d.StreamSequence); err != nil {
		return bus.Poison(err)
	}
	return nil
}

// apply updates the live set and starts or stops analysis accordingly.
func (w *Watcher) apply(ev cloudevents.Event, seq uint64) error {
	change, c, err := w.live.Apply(ev, seq)
	if err != nil {
		return err
	}
	log := w.log.With("app", c.App, "rollout", c.RolloutID)
	switch change {
	case live.Started:
		log.Info("canary live", "step", c.Step, "weight", c.Weight, "artifact", c.ArtifactID)
		w.startLoop(c)
	case live.Ended:
		log.Info("canary no longer live", "by", ev.Type())
		w.stopLoop(c.App, c.RolloutID)
	}
	return nil
}

// Stop drains the consumer and ends every analysis.
func (w *Watcher) Stop(ctx context.Context) error {
	w.ready.Store(false)
	var err error
	if w.cons != nil {
		err = w.cons.Drain(ctx)
	}
	if w.cancel != nil {
		w.cancel()
	}
	w.stopLoops()
	return err
}

// Ready reports whether the live state is rebuilt and the consumer runs.
func (w *Watcher) Ready(context.Context) error {
	if !w.ready.Load() {
		return errors.New("rebuilding live canaries from the stream")
	}
	return nil
}

// Live returns the live canaries, for tests and status.
func (w *Watcher) Live() []live.Canary { return w.live.Canaries() }
