// Package monitor is the canary analysis loop: one goroutine per live
// canary that, every analysis interval, reads the canary's metrics through
// the application's provider and judges them by the metric rules (5xx
// ratio, memory against the stable version). A breach is published as an
// anomaly once per rollout and rule; no data is logged and counted, never
// taken for a pass.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/anomaly"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

// Config configures a Monitor.
type Config struct {
	// Providers by policy provider name.
	Providers map[string]analysis.Provider
	// App returns an application's policy; false means the policy does not
	// name it, and its canary has no metric analysis.
	App func(name string) (policy.App, bool)
	// Interval, when positive, replaces every application's analysis
	// interval.
	Interval time.Duration
	// Evaluations counts rule evaluations by rule and result
	// (analysis.NewEvaluations).
	Evaluations *prometheus.CounterVec
	Publisher   *anomaly.Publisher
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Monitor runs the analysis loops.
type Monitor struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	// runCtx ends every loop; loops outlive the context of the event that
	// started them.
	runCtx context.Context
	cancel context.CancelFunc

	// mu guards loops; it is held while a replaced loop finishes, so the
	// loops themselves never take it.
	mu    sync.Mutex
	loops map[string]*loop // by application
	wg    sync.WaitGroup

	repMu    sync.Mutex
	reported map[string]map[string]bool // metric rules that published, by rollout
}

// loop is one canary step's analysis goroutine.
type loop struct {
	canary live.Canary
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and registers the loop's metrics.
func New(cfg Config) (*Monitor, error) {
	if cfg.Publisher == nil || cfg.Evaluations == nil || cfg.App == nil {
		return nil, errors.New("monitor: a publisher, an evaluations counter and a policy lookup are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("monitor metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Monitor{cfg: cfg, log: cfg.Logger, metrics: m, runCtx: ctx, cancel: cancel,
		loops: map[string]*loop{}, reported: map[string]map[string]bool{}}, nil
}

// Watch starts analysing c, replacing the analysis of the application's
// previous step: a new step is a new window.
func (m *Monitor) Watch(c live.Canary) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.loops[c.App]; ok {
		old.cancel()
		<-old.done
		delete(m.loops, c.App)
	}
	if m.runCtx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	l := &loop{canary: c, cancel: cancel, done: make(chan struct{})}
	m.loops[c.App] = l
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(l.done)
		m.analyse(ctx, c)
	}()
}

// Forget ends the analysis of app's canary of rollout and forgets which of
// its rules already published.
func (m *Monitor) Forget(app, rollout string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.loops[app]; ok && l.canary.RolloutID == rollout {
		l.cancel()
		<-l.done
		delete(m.loops, app)
	}
	m.repMu.Lock()
	delete(m.reported, rollout)
	m.repMu.Unlock()
}

// Stop ends every loop and waits for them; Watch starts none afterwards.
func (m *Monitor) Stop() {
	m.mu.Lock()
	m.cancel()
	for app, l := range m.loops {
		l.cancel()
		delete(m.loops, app)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// interval is how often app is judged.
func (m *Monitor) interval(p policy.App, known bool) time.Duration {
	switch {
	case m.cfg.Interval > 0:
		return m.cfg.Interval
	case known && p.Analysis.Interval > 0:
		return p.Analysis.Interval
	}
	return policy.DefaultInterval
}

// analyse judges c every interval until ctx ends. The window opens at once,
// so the scrape provider's baseline is as close to the step's start as the
// watcher can make it.
func (m *Monitor) analyse(ctx context.Context, c live.Canary) {
	log := m.log.With("app", c.App, "rollout", c.RolloutID, "step", c.Step, "weight", c.Weight)
	var (
		win      analysis.Window
		provider string
		warned   bool
		// last result by rule: no data is logged at info when it begins,
		// and at debug while it lasts, so a 1s interval does not flood the log.
		last = map[string]analysis.Result{}
		rec  = stepRecord{from: time.Now().UTC()}
	)
	defer m.recordStep(log, c, &rec)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		p, known := m.cfg.App(c.App)
		interval := m.interval(p, known)
		timer.Reset(interval)
		if !known {
			if !warned {
				log.Warn("the policy names no such application: no metric analysis (webhooks still apply)")
				warned = true
			}
			continue
		}
		if win == nil || provider != p.Analysis.Provider {
			var err error
			win, provider, err = m.open(ctx, c, p, interval)
			if err != nil {
				m.noData(log, provider, err)
				continue
			}
			continue // the window starts now; the first reading is one interval on
		}
		m.evaluate(ctx, log, c, p, provider, win, interval, last, &rec)
	}
}

// open opens a window on c with the application's provider.
func (m *Monitor) open(ctx context.Context, c live.Canary, p policy.App, interval time.Duration) (analysis.Window, string, error) {
	name := p.Analysis.Provider
	prov, ok := m.cfg.Providers[name]
	if !ok {
		return nil, name, fmt.Errorf("no metrics provider %q", name)
	}
	octx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	win, err := prov.Open(octx, analysis.Target{App: c.App, Since: c.Since, Policy: p})
	if err != nil {
		return nil, name, err
	}
	return win, name, nil
}

// noData records a failed read: every metric rule has no data this time.
func (m *Monitor) noData(log *slog.Logger, provider string, err error) {
	if provider != "" {
		m.metrics.providerErrors.WithLabelValues(provider).Inc()
	}
	for _, rule := range []string{analysis.RuleErrorRate, analysis.RuleMemory} {
		m.cfg.Evaluations.WithLabelValues(rule, string(analysis.NoData)).Inc()
	}
	log.Warn("no data: metrics could not be read", "provider", provider, "err", err)
}

// evaluate reads the window once and judges it by every metric rule.
func (m *Monitor) evaluate(ctx context.Context, log *slog.Logger, c live.Canary, p policy.App, provider string, win analysis.Window,
	interval time.Duration, last map[string]analysis.Result, rec *stepRecord) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, interval)
	reading, err := win.Read(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			m.noData(log, provider, err)
		}
		return
	}
	verdicts := []analysis.Verdict{
		analysis.ErrorRate(reading, p.Analysis.ErrorRate),
		analysis.Memory(reading, p.Analysis.Memory),
	}
	if p.Analysis.Latency.MaxMean > 0 {
		verdicts = append(verdicts, analysis.Latency(reading, p.Analysis.Latency))
	}
	m.metrics.latency.WithLabelValues(provider).Observe(time.Since(start).Seconds())
	rec.add(provider, verdicts)
	for _, v := range verdicts {
		m.cfg.Evaluations.WithLabelValues(v.Rule, string(v.Result)).Inc()
		prev := last[v.Rule]
		last[v.Rule] = v.Result
		switch v.Result {
		case analysis.NoData:
			level := slog.LevelInfo
			if prev == analysis.NoData {
				level = slog.LevelDebug
			}
			log.Log(ctx, level, "no data: not a pass", "rule", v.Rule, "reason", v.Description)
		case analysis.Breach:
			if m.alreadyReported(c.RolloutID, v.Rule) {
				continue
			}
			log.Warn("breach", "rule", v.Rule, "observed", v.Observed, "threshold", v.Threshold, "description", v.Description)
			a := events.Anomaly{
				Target: events.TargetCanary, App: c.App, Environment: c.Environment, ArtifactID: c.ArtifactID,
				RolloutID: c.RolloutID, Rule: v.Rule, Origin: provider,
				Description: fmt.Sprintf("%s: %s (step %d at %d%%)", c.App, v.Description, c.Step, c.Weight),
				Observed:    new(v.Observed), Threshold: new(v.Threshold), DetectedAt: time.Now().UTC(),
			}
			if err := m.cfg.Publisher.Publish(ctx, anomaly.MetricID(c.RolloutID, v.Rule), &c, a); err != nil {
				// Not marked reported: the next interval tries again.
				log.Error("publish anomaly", "rule", v.Rule, "err", err)
				continue
			}
			m.markReported(c.RolloutID, v.Rule)
		}
	}
}

func (m *Monitor) alreadyReported(rollout, rule string) bool {
	m.repMu.Lock()
	defer m.repMu.Unlock()
	return m.reported[rollout][rule]
}

func (m *Monitor) markReported(rollout, rule string) {
	m.repMu.Lock()
	defer m.repMu.Unlock()
	if m.reported[rollout] == nil {
		m.reported[rollout] = map[string]bool{}
	}
	m.reported[rollout][rule] = true
}

// stepRecord gathers one step's readings for its analysis event: per rule,
// the worst value read and whether any reading breached.
type stepRecord struct {
	from     time.Time
	provider string
	readings int
	metrics  []events.Metric // in the order the rules are judged
}

func (r *stepRecord) add(provider string, vs []analysis.Verdict) {
	r.provider = provider
	r.readings++
	for _, v := range vs {
		i := slices.IndexFunc(r.metrics, func(m events.Metric) bool { return m.Rule == v.Rule })
		if i < 0 {
			r.metrics = append(r.metrics, events.Metric{Rule: v.Rule, Result: string(analysis.NoData)})
			i = len(r.metrics) - 1
		}
		m := &r.metrics[i]
		m.Threshold = v.Threshold
		if v.Result == analysis.NoData {
			continue
		}
		m.Readings++
		if m.Readings == 1 || v.Observed > m.Observed {
			m.Observed = v.Observed
		}
		if m.Result != string(analysis.Breach) {
			m.Result = string(v.Result)
		}
	}
}

// recordStep publishes the step's analysis when its loop ends because the
// step changed or the rollout ended; a loop ended by the watcher stopping
// publishes nothing (the step is not over), nor does a step never read.
func (m *Monitor) recordStep(log *slog.Logger, c live.Canary, rec *stepRecord) {
	if rec.readings == 0 || m.runCtx.Err() != nil {
		return
	}
	a := events.Analysis{RolloutID: c.RolloutID, App: c.App, Environment: c.Environment, ArtifactID: c.ArtifactID,
		Step: c.Step, Weight: c.Weight, Provider: rec.provider, Readings: rec.readings, Metrics: rec.metrics,
		From: rec.from, To: time.Now().UTC()}
	if err := m.cfg.Publisher.PublishAnalysis(m.runCtx, c, a); err != nil {
		log.Warn("step analysis not recorded", "err", err)
	}
}
