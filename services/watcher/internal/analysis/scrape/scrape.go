// Package scrape is the metrics provider of the embedded default: it reads
// the local router's /-/metrics (requests by version and status code) and
// each upstream's /metrics (the memory gauge) directly, in the Prometheus
// text format, with no Prometheus server in between.
//
// The router's counters are cumulative since the router started, so a
// window subtracts a baseline scraped when it opened; a counter that went
// down (the router restarted) is counted from zero again.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
)

// maxBody bounds one scraped response.
const maxBody = 16 << 20

// accept asks for the text format; a server may still answer in delimited
// protobuf, which the decoder reads too.
const accept = "text/plain;version=0.0.4;q=1,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5"

// Provider scrapes metrics endpoints over HTTP.
type Provider struct {
	client *http.Client
}

var _ analysis.Provider = (*Provider)(nil)

// New returns a scrape provider; a nil client means http.DefaultClient.
// Reads are bounded by the caller's context.
func New(client *http.Client) *Provider {
	if client == nil {
		client = http.DefaultClient
	}
	return &Provider{client: client}
}

// Open scrapes the router once for the window's baseline.
func (p *Provider) Open(ctx context.Context, t analysis.Target) (analysis.Window, error) {
	local := t.Policy.Router.Local
	if local == nil {
		return nil, fmt.Errorf("scrape %s: the application has no local router to scrape", t.App)
	}
	c, err := p.requests(ctx, local.MetricsURL(), t.App)
	if err != nil {
		return nil, fmt.Errorf("scrape %s baseline: %w", t.App, err)
	}
	return &window{p: p, t: t, local: local, base: c}, nil
}

// counters are the router's cumulative canary counters.
type counters struct {
	total, errs, latencySum, latencyCount float64
}

type window struct {
	p     *Provider
	t     analysis.Target
	local *policy.LocalRouter
	base  counters
}

// Read scrapes the router and both upstreams.
func (w *window) Read(ctx context.Context) (analysis.Reading, error) {
	c, err := w.p.requests(ctx, w.local.MetricsURL(), w.t.App)
	if err != nil {
		return analysis.Reading{}, fmt.Errorf("scrape %s: %w", w.t.App, err)
	}
	b := w.base
	if c.total < b.total || c.errs < b.errs || c.latencyCount < b.latencyCount {
		// The router restarted: its counters began again at zero.
		w.base, b = counters{}, counters{}
	}
	r := analysis.Reading{Requests: c.total - b.total, Errors: c.errs - b.errs,
		LatencySum: c.latencySum - b.latencySum, LatencyCount: c.latencyCount - b.latencyCount}
	metric := w.t.Policy.Analysis.Memory.Metric
	canary, cerr := w.p.gauge(ctx, metricsURL(w.local.Canary), metric)
	stable, serr := w.p.gauge(ctx, metricsURL(w.local.Stable), metric)
	switch {
	case cerr != nil:
		r.MemoryReason = "canary: " + cerr.Error()
	case serr != nil:
		r.MemoryReason = "stable: " + serr.Error()
	default:
		r.CanaryMemory, r.StableMemory, r.HasMemory = canary, stable, true
	}
	return r, nil
}

// metricsURL is an upstream's /metrics.
func metricsURL(base string) string { return strings.TrimSuffix(base, "/") + "/metrics" }

// requests sums app's canary requests, those answered 5xx, and their
// response times, from the router's request counter and latency histogram.
// No series yet is zero: the router creates them on the first request.
func (p *Provider) requests(ctx context.Context, url, app string) (c counters, err error) {
	fams, err := p.fetch(ctx, url)
	if err != nil {
		return c, err
	}
	canary := func(m *dto.Metric) bool {
		labels := labelMap(m)
		return labels["app"] == app && labels["version"] == policy.VersionCanary
	}
	for _, m := range fams[policy.RouterRequests].GetMetric() {
		if !canary(m) {
			continue
		}
		v := value(m)
		c.total += v
		if strings.HasPrefix(labelMap(m)["code"], "5") {
			c.errs += v
		}
	}
	for _, m := range fams[policy.RouterLatency].GetMetric() {
		if h := m.GetHistogram(); h != nil && canary(m) {
			c.latencySum += h.GetSampleSum()
			c.latencyCount += float64(h.GetSampleCount())
		}
	}
	return c, nil
}

// ErrNoMetric is returned when an endpoint does not expose the gauge asked for.
var ErrNoMetric = errors.New("metric not exposed")

// gauge sums every series of the metric name at url.
func (p *Provider) gauge(ctx context.Context, url, name string) (float64, error) {
	fams, err := p.fetch(ctx, url)
	if err != nil {
		return 0, err
	}
	fam, ok := fams[name]
	if !ok || len(fam.GetMetric()) == 0 {
		return 0, fmt.Errorf("%w: %s at %s", ErrNoMetric, name, url)
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		sum += value(m)
	}
	return sum, nil
}

// fetch GETs url and decodes its metric families.
func (p *Provider) fetch(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", accept)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scrape %s: HTTP %d", url, resp.StatusCode)
	}
	return Decode(io.LimitReader(resp.Body, maxBody), expfmt.ResponseFormat(resp.Header))
}

// Decode reads metric families in format; an unknown format is read as the
// text format, which is what a plain /metrics handler serves.
func Decode(r io.Reader, format expfmt.Format) (map[string]*dto.MetricFamily, error) {
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.FmtText
	}
	dec := expfmt.NewDecoder(r, format)
	fams := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			return fams, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode metrics: %w", err)
		}
		if prev, ok := fams[mf.GetName()]; ok {
			prev.Metric = append(prev.Metric, mf.Metric...)
			continue
		}
		fams[mf.GetName()] = &mf
	}
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value is a counter's, gauge's or untyped sample's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
