package promql_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/promql"
)

// fakeAPI answers /api/v1/query from a table of query → value; a query
// missing from the table matches no series.
type fakeAPI struct {
	mu      sync.Mutex
	values  map[string]string
	queries []string
	status  int
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	v, ok := f.values[q]
	status := f.status
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "bad_data", "error": "parse error"})
		return
	}
	result := []any{}
	if ok {
		result = append(result, map[string]any{"metric": map[string]string{}, "value": []any{float64(time.Now().Unix()), v}})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}})
}

func target(url string, since time.Time) analysis.Target {
	return analysis.Target{App: "cart", Since: since, Policy: policy.App{
		Name: "cart", Environment: "prod",
		Analysis: policy.Analysis{Provider: policy.ProviderPrometheus, Prometheus: &policy.Prometheus{URL: url},
			ErrorRate: policy.DefaultErrorRate, Memory: policy.DefaultMemory},
	}}
}

func TestQueries(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	errs, total, canary, stable := promql.Queries(target("http://p", now.Add(-90*time.Second-time.Millisecond)), now)
	want := []string{
		`sum(increase(rampart_router_requests_total{app="cart",version="canary",code=~"5.."}[91s]))`,
		`sum(increase(rampart_router_requests_total{app="cart",version="canary"}[91s]))`,
		`sum(process_resident_memory_bytes{app="cart",version="canary"})`,
		`sum(process_resident_memory_bytes{app="cart",version="stable"})`,
	}
	for i, got := range []string{errs, total, canary, stable} {
		if got != want[i] {
			t.Errorf("query %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
	// A step that has just begun (or a clock ahead of ours) still asks for a range.
	if errs, _, _, _ := promql.Queries(target("http://p", now.Add(time.Minute)), now); errs != `sum(increase(rampart_router_requests_total{app="cart",version="canary",code=~"5.."}[1s]))` {
		t.Errorf("future start: %s", errs)
	}
}

func TestRead(t *testing.T) {
	since := time.Now().Add(-30 * time.Second)
	errs, total, canary, stable := promql.Queries(target("", since), time.Now())
	tests := []struct {
		name   string
		values map[string]string
		want   analysis.Result // of the error-rate rule
		mem    analysis.Result
	}{
		{"breach", map[string]string{errs: "12.5", total: "250", canary: "3e8", stable: "1e8"}, analysis.Breach, analysis.Breach},
		{"healthy", map[string]string{errs: "0", total: "250", canary: "1e8", stable: "1e8"}, analysis.Pass, analysis.Pass},
		{"no series is no data", map[string]string{}, analysis.NoData, analysis.NoData},
		{"NaN is no data", map[string]string{errs: "NaN", total: "NaN", canary: "1e8"}, analysis.NoData, analysis.NoData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{values: tc.values}
			srv := httptest.NewServer(api)
			defer srv.Close()
			win, err := promql.New(nil).Open(t.Context(), target(srv.URL, since))
			if err != nil {
				t.Fatal(err)
			}
			r, err := win.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			app := target(srv.URL, since).Policy
			if v := analysis.ErrorRate(r, app.Analysis.ErrorRate); v.Result != tc.want {
				t.Errorf("error rate %+v, want %s (reading %+v)", v, tc.want, r)
			}
			if v := analysis.Memory(r, app.Analysis.Memory); v.Result != tc.mem {
				t.Errorf("memory %+v, want %s (reading %+v)", v, tc.mem, r)
			}
			if len(api.queries) != 4 {
				t.Errorf("ran %d queries: %q", len(api.queries), api.queries)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	api := &fakeAPI{status: http.StatusBadRequest}
	srv := httptest.NewServer(api)
	defer srv.Close()
	win, err := promql.New(nil).Open(t.Context(), target(srv.URL, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := win.Read(t.Context()); err == nil {
		t.Fatal("a failing query read as data")
	}
	if _, err := promql.New(nil).Open(t.Context(), analysis.Target{App: "cart"}); err == nil {
		t.Fatal("opened a window without a Prometheus URL")
	}
}
