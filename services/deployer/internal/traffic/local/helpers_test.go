package local_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

// upstream is a version under test: it answers with its name and status and
// counts the requests it saw.
type upstream struct {
	name   string
	status int
	hits   atomic.Int64
	srv    *httptest.Server
	// last is the last request it saw.
	last atomic.Pointer[http.Request]
}

func newUpstream(t testing.TB, name string, status int) *upstream {
	t.Helper()
	u := &upstream{name: name, status: status}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.last.Store(r.Clone(context.Background()))
		w.WriteHeader(u.status)
		_, _ = io.WriteString(w, u.name)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// startRouter starts a local router for app "shop" on a random loopback
// port, stopped when the test ends.
func startRouter(t testing.TB, stable, canary string, opts local.Options) *local.Router {
	t.Helper()
	r, err := local.New("shop", policy.LocalRouter{Listen: "127.0.0.1:0", Stable: stable, Canary: canary}, opts)
	if err != nil {
		t.Fatalf("local.New: %v", err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r
}

// response is what a client saw.
type response struct {
	status  int
	version string
	body    string
}

func get(t testing.TB, c *http.Client, url string) response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return response{resp.StatusCode, resp.Header.Get(local.VersionHeader), string(b)}
}

// scrape reads a Prometheus text exposition over HTTP, as the watcher does.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: parse: %v", url, err)
	}
	return fams
}

// sample is the value of the series of name with exactly labels: a
// counter's or gauge's value, a histogram's sample count. ok is false when
// there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (v float64, ok bool) {
	f, found := fams[name]
	if !found {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// checkFor polls f every 10ms until it returns nil or timeout passes.
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	natstest.CheckFor(t, timeout, 10*time.Millisecond, f)
}
