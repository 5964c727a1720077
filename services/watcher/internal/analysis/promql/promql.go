// Package promql is the metrics provider for production: it asks a
// Prometheus server, over its HTTP API (client_golang api/v1), for the
// canary's requests and 5xx responses since its step began and for the
// memory gauges of both versions.
//
// The router's request counter is selected by app, version and code labels,
// as the local router exposes it (policy.RouterRequests); other routers are
// expected to be relabelled to the same names at scrape time. increase()
// does not count a series' first sample, so a 5xx series that the router
// creates on its first error is seen from its second scrape on: a
// detection delay of one scrape interval, never a missed breach.
package promql

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
)

// Provider queries Prometheus servers, one API client per server URL.
type Provider struct {
	client *http.Client

	mu   sync.Mutex
	apis map[string]v1.API
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a PromQL provider; a nil client means http.DefaultClient.
// Queries are bounded by the caller's context.
func New(client *http.Client) *Provider {
	if client == nil {
		client = http.DefaultClient
	}
	return &Provider{client: client, apis: map[string]v1.API{}}
}

// Open returns a window from the step's start; PromQL needs no baseline.
func (p *Provider) Open(_ context.Context, t analysis.Target) (analysis.Window, error) {
	if t.Policy.Analysis.Prometheus == nil || t.Policy.Analysis.Prometheus.URL == "" {
		return nil, fmt.Errorf("promql %s: the application names no Prometheus server", t.App)
	}
	a, err := p.api(t.Policy.Analysis.Prometheus.URL)
	if err != nil {
		return nil, err
	}
	return &window{api: a, t: t, now: time.Now}, nil
}

func (p *Provider) api(url string) (v1.API, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.apis[url]; ok {
		return a, nil
	}
	c, err := api.NewClient(api.Config{Address: url, Client: p.client})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", url, err)
	}
	a := v1.NewAPI(c)
	p.apis[url] = a
	return a, nil
}

type window struct {
	api v1.API
	t   analysis.Target
	now func() time.Time
}

// Queries returns the PromQL the window runs at now: the canary's 5xx and
// all requests over the step so far, and the memory gauge of each version.
func Queries(t analysis.Target, now time.Time) (errors, total, canaryMem, stableMem string) {
	secs := int64(math.Ceil(now.Sub(t.Since).Seconds()))
	secs = max(secs, 1)
	app := strconv.Quote(t.App)
	sel := fmt.Sprintf(`%s{app=%s,version=%q`, policy.RouterRequests, app, policy.VersionCanary)
	errors = fmt.Sprintf(`sum(increase(%s,code=~"5.."}[%ds]))`, sel, secs)
	total = fmt.Sprintf(`sum(increase(%s}[%ds]))`, sel, secs)
	mem := t.Policy.Analysis.Memory.Metric
	canaryMem = fmt.Sprintf(`sum(%s{app=%s,version=%q})`, mem, app, policy.VersionCanary)
	stableMem = fmt.Sprintf(`sum(%s{app=%s,version=%q})`, mem, app, policy.VersionStable)
	return errors, total, canaryMem, stableMem
}

// LatencyQueries returns the PromQL of the canary's response times over
// the step so far: their sum in seconds and their count.
func LatencyQueries(t analysis.Target, now time.Time) (sum, count string) {
	secs := max(int64(math.Ceil(now.Sub(t.Since).Seconds())), 1)
	sel := fmt.Sprintf(`{app=%s,version=%q}`, strconv.Quote(t.App), policy.VersionCanary)
	sum = fmt.Sprintf(`sum(increase(%s_sum%s[%ds]))`, policy.RouterLatency, sel, secs)
	count = fmt.Sprintf(`sum(increase(%s_count%s[%ds]))`, policy.RouterLatency, sel, secs)
	return sum, count
}

// Read runs the window's queries at one instant (the latency ones only
// when the latency rule is on).
func (w *window) Read(ctx context.Context) (analysis.Reading, error) {
	now := w.now()
	qErr, qTotal, qCanary, qStable := Queries(w.t, now)
	var r analysis.Reading
	var err error
	if r.Errors, _, err = w.scalar(ctx, qErr, now); err != nil {
		return r, err
	}
	if r.Requests, _, err = w.scalar(ctx, qTotal, now); err != nil {
		return r, err
	}
	canary, okC, err := w.scalar(ctx, qCanary, now)
	if err != nil {
		return r, err
	}
	stable, okS, err := w.scalar(ctx, qStable, now)
	if err != nil {
		return r, err
	}
	switch {
	case !okC:
		r.MemoryReason = "no canary series: " + qCanary
	case !okS:
		r.MemoryReason = "no stable series: " + qStable
	default:
		r.CanaryMemory, r.StableMemory, r.HasMemory = canary, stable, true
	}
	if w.t.Policy.Analysis.Latency.MaxMean > 0 {
		qSum, qCount := LatencyQueries(w.t, now)
		if r.LatencySum, _, err = w.scalar(ctx, qSum, now); err != nil {
			return r, err
		}
		if r.LatencyCount, _, err = w.scalar(ctx, qCount, now); err != nil {
			return r, err
		}
	}
	return r, nil
}

// scalar runs an instant query whose answer is one number; ok is false when
// it matched no series (sum() of nothing is an empty vector).
func (w *window) scalar(ctx context.Context, q string, at time.Time) (v float64, ok bool, err error) {
	val, _, _, err := w.api.Query(ctx, q, at)
	if err != nil {
		return 0, false, fmt.Errorf("prometheus query %s: %w", q, err)
	}
	switch x := val.(type) {
	case model.Vector:
		if len(x) == 0 {
			return 0, false, nil
		}
		f := float64(x[0].Value)
		if math.IsNaN(f) {
			return 0, false, nil
		}
		return f, true, nil
	case *model.Scalar:
		return float64(x.Value), true, nil
	}
	return 0, false, fmt.Errorf("prometheus query %s: unexpected result type %s", q, val.Type())
}
