package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/promql"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/scrape"
	"github.com/rampartci/rampart/services/watcher/internal/anomaly"
	"github.com/rampartci/rampart/services/watcher/internal/ingress"
	"github.com/rampartci/rampart/services/watcher/internal/live"
	"github.com/rampartci/rampart/services/watcher/internal/monitor"
)

// config is what New resolves from Options.
type config struct {
	// Policy is rampart.yaml; nil, or an application it does not name,
	// means no metric analysis for that application (alerts still apply).
	Policy *policy.Store
	// Providers by policy provider name; nil means scrape and prometheus
	// over HTTP with a 10s client timeout.
	Providers map[string]analysis.Provider
	// Interval, when positive, replaces every application's analysis
	// interval. Options keep it at policy.MinInterval or more; tests go
	// lower.
	Interval     time.Duration
	Alertmanager webhook.Auth
	SIEMSecret   []byte
	// MaxBody bounds webhook bodies (default ingress.MaxBody).
	MaxBody int64
	// MaxAlerts caps one Alertmanager delivery (default
	// ingress.DefaultMaxAlerts).
	MaxAlerts int
}

// watcher is the running service: the tracker keeps the live set current
// and starts and ends the monitor's analysis loops; the ingress matches
// alerts against the same set.
type watcher struct {
	live        *live.Set
	tracker     *live.Tracker
	monitor     *monitor.Monitor
	ingress     *ingress.Ingress
	evaluations *prometheus.CounterVec
}

// startWatcher registers the metrics, rebuilds the live canaries from the
// stream and consumes the durable. The analysis loops outlive ctx; stop
// ends them.
func startWatcher(ctx context.Context, cfg config, deps service.Deps) (*watcher, error) {
	if cfg.Providers == nil {
		client := &http.Client{Timeout: 10 * time.Second}
		cfg.Providers = map[string]analysis.Provider{
			policy.ProviderScrape:     scrape.New(client),
			policy.ProviderPrometheus: promql.New(client),
		}
	}
	appPolicy := func(name string) (policy.App, bool) {
		if cfg.Policy == nil || cfg.Policy.Current() == nil {
			return policy.App{}, false
		}
		return cfg.Policy.Current().App(name)
	}
	w := &watcher{live: live.NewSet(), evaluations: analysis.NewEvaluations()}
	liveCanaries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rampart_watcher_live_canaries",
		Help: "Canaries the watcher currently analyses.",
	}, func() float64 { return float64(len(w.live.Canaries())) })
	for _, c := range []prometheus.Collector{w.evaluations, liveCanaries} {
		if err := deps.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("watcher metrics: %w", err)
		}
	}
	pub, err := anomaly.NewPublisher(deps.Bus, deps.Registerer)
	if err != nil {
		return nil, err
	}
	w.monitor, err = monitor.New(monitor.Config{
		Providers: cfg.Providers, App: appPolicy, Interval: cfg.Interval, Evaluations: w.evaluations,
		Publisher: pub, Registerer: deps.Registerer, Logger: deps.Logger,
	})
	if err != nil {
		return nil, err
	}
	w.tracker = live.NewTracker(w.live, deps.Bus, Consumer, w.follow, deps.Logger)
	w.ingress, err = ingress.New(ingress.Config{
		Live: w.live, App: appPolicy, Ready: w.tracker.Ready, Alertmanager: cfg.Alertmanager, SIEMSecret: cfg.SIEMSecret,
		MaxBody: cfg.MaxBody, MaxAlerts: cfg.MaxAlerts, Evaluations: w.evaluations, Publisher: pub, Registerer: deps.Registerer, Logger: deps.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := w.tracker.Start(ctx); err != nil {
		w.monitor.Stop()
		return nil, err
	}
	return w, nil
}

// follow starts a live canary's analysis, or ends it.
func (w *watcher) follow(change live.Change, c live.Canary) {
	switch change {
	case live.Started:
		w.monitor.Watch(c)
	case live.Ended:
		w.monitor.Forget(c.App, c.RolloutID)
	}
}

// stop drains the consumer and ends every analysis.
func (w *watcher) stop(ctx context.Context) error {
	err := w.tracker.Stop(ctx)
	w.monitor.Stop()
	return err
}

// ServeHTTP serves the webhooks.
func (w *watcher) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.ingress.ServeHTTP(rw, r) }
