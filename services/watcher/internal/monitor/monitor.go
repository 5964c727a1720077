package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

// startLoop starts analysing c, replacing the analysis of the application's
// previous step: a new step is a new window.
func (w *Watcher) startLoop(c live.Canary) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.loops[c.App]; ok {
		old.cancel()
		<-old.done
		delete(w.loops, c.App)
	}
	if w.runCtx == nil || w.runCtx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(w.runCtx)
	l := &loop{canary: c, cancel: cancel, done: make(chan struct{})}
	w.loops[c.App] = l
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(l.done)
		w.analyse(ctx, c)
	}()
}

// stopLoop ends the analysis of app's canary of rollout and forgets which of
// its rules already published.
func (w *Watcher) stopLoop(app, rollout string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.loops[app]; ok && l.canary.RolloutID == rollout {
		l.cancel()
		<-l.done
		delete(w.loops, app)
	}
	w.repMu.Lock()
	delete(w.reported, rollout)
	w.repMu.Unlock()
}

func (w *Watcher) stopLoops() {
	w.mu.Lock()
	for app, l := range w.loops {
		l.cancel()
		delete(w.loops, app)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// appPolicy is app's policy, if the policy names it.
func (w *Watcher) appPolicy(app string) (policy.App, bool) {
	if w.cfg.Policy == nil || w.cfg.Policy.Current() == nil {
		return policy.App{}, false
	}
	return w.cfg.Policy.Current().App(app)
}

// interval is how often app is judged.
func (w *Watcher) interval(p policy.App, known bool) time.Duration {
	switch {
	case w.cfg.Interval > 0:
		return w.cfg.Interval
	case known && p.Analysis.Interval > 0:
		return p.Analysis.Interval
	}
	return policy.DefaultInterval
}

// analyse judges c every interval until ctx ends. The window opens at once,
// so the scrape provider's baseline is as close to the step's start as the
// watcher can make it.
func (w *Watcher) analyse(ctx context.Context, c live.Canary) {
	log := w.log.With("app", c.App, "rollout", c.RolloutID, "step", c.Step, "weight", c.Weight)
	var (
		win      analysis.Window
		provider string
		warned   bool
		// last result by rule: no data is logged at info when it begins,
		// and at debug while it lasts, so a 1s interval does not flood the log.
		last = map[string]analysis.Result{}
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		p, known := w.appPolicy(c.App)
		interval := w.interval(p, known)
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
			win, provider, err = w.open(ctx, c, p, interval)
			if err != nil {
				w.noData(log, provider, err)
				continue
			}
			continue // the window starts now; the first reading is one interval on
		}
		w.evaluate(ctx, log, c, p, provider, win, interval, last)
	}
}

// open opens a window on c with the application's provider.
func (w *Watcher) open(ctx context.Context, c live.Canary, p policy.App, interval time.Duration) (analysis.Window, string, error) {
	name := p.Analysis.Provider
	prov, ok := w.cfg.Providers[name]
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
func (w *Watcher) noData(log *slog.Logger, provider string, err error) {
	if provider != "" {
		w.metrics.providerErrors.WithLabelValues(provider).Inc()
	}
	for _, rule := range []string{analysis.RuleErrorRate, analysis.RuleMemory} {
		w.metrics.evaluations.WithLabelValues(rule, string(analysis.NoData)).Inc()
	}
	log.Warn("no data: metrics could not be read", "provider", provider, "err", err)
}

// evaluate reads the window once and judges it by every metric rule.
func (w *Watcher) evaluate(ctx context.Context, log *slog.Logger, c live.Canary, p policy.App, provider string, win analysis.Window,
	interval time.Duration, last map[string]analysis.Result) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, interval)
	reading, err := win.Read(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.noData(log, provider, err)
		}
		return
	}
	verdicts := []analysis.Verdict{
		analysis.ErrorRate(reading, p.Analysis.ErrorRate),
		analysis.Memory(reading, p.Analysis.Memory),
	}
	w.metrics.latency.WithLabelValues(provider).Observe(time.Since(start).Seconds())
	for _, v := range verdicts {
		w.metrics.evaluations.WithLabelValues(v.Rule, string(v.Result)).Inc()
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
			if w.alreadyReported(c.RolloutID, v.Rule) {
				continue
			}
			log.Warn("breach", "rule", v.Rule, "observed", v.Observed, "threshold", v.Threshold, "description", v.Description)
			a := events.Anomaly{
				Target: events.TargetCanary, App: c.App, Environment: c.Environment, ArtifactID: c.ArtifactID,
				RolloutID: c.RolloutID, Rule: v.Rule, Origin: provider,
				Description: fmt.Sprintf("%s: %s (step %d at %d%%)", c.App, v.Description, c.Step, c.Weight),
				Observed:    ptr(v.Observed), Threshold: ptr(v.Threshold), DetectedAt: time.Now().UTC(),
			}
			if err := w.publish(ctx, MetricAnomalyID(c.RolloutID, v.Rule), &c, a); err != nil {
				// Not marked reported: the next interval tries again.
				log.Error("publish anomaly", "rule", v.Rule, "err", err)
				continue
			}
			w.markReported(c.RolloutID, v.Rule)
		}
	}
}

// MetricAnomalyID is the id of the anomaly a metric rule raises against a
// rollout: one per rollout and rule, however often the breach is seen.
func MetricAnomalyID(rollout, rule string) string { return "anomaly:" + rollout + ":" + rule }

func (w *Watcher) alreadyReported(rollout, rule string) bool {
	w.repMu.Lock()
	defer w.repMu.Unlock()
	return w.reported[rollout][rule]
}

func (w *Watcher) markReported(rollout, rule string) {
	w.repMu.Lock()
	defer w.repMu.Unlock()
	if w.reported[rollout] == nil {
		w.reported[rollout] = map[string]bool{}
	}
	w.reported[rollout][rule] = true
}

// publish publishes an anomaly with id; c, when not nil, is the canary it is
// against, which gives the chain and the cause.
func (w *Watcher) publish(ctx context.Context, id string, c *live.Canary, a events.Anomaly) error {
	m := events.Meta{ID: id, Source: Source, App: a.App, Time: a.DetectedAt}
	if c != nil {
		m.ChainID, m.CausedBy = c.ChainID, c.StepEventID
	}
	ev, err := events.NewAnomaly(m, a)
	if err != nil {
		return fmt.Errorf("build anomaly %s: %w", id, err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := w.cfg.Bus.Publish(pctx, ev); err != nil {
		return err
	}
	w.metrics.anomalies.WithLabelValues(a.Origin, a.Target).Inc()
	return nil
}

func ptr(f float64) *float64 { return &f }
