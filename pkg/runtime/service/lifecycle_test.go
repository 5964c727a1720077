package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/service/servicetest"
)

// phoenix registers a counter at every start, counts its starts and stops,
// and serves a route that answers for the start in force.
type phoenix struct {
	starts, stops atomic.Int32
	mu            sync.Mutex
	counter       prometheus.Counter // nil while stopped
	stopping      <-chan struct{}
}

func (p *phoenix) Name() string { return "watcher" }
func (p *phoenix) Restartable() {}

func (p *phoenix) Start(_ context.Context, d service.Deps) error {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_phoenix_starts_total", Help: "Starts."})
	if err := d.Registerer.Register(c); err != nil {
		return err
	}
	c.Inc()
	p.mu.Lock()
	p.counter, p.stopping = c, d.Stopping
	p.mu.Unlock()
	p.starts.Add(1)
	return nil
}

func (p *phoenix) Stop(context.Context) error {
	p.mu.Lock()
	p.counter = nil
	p.mu.Unlock()
	p.stops.Add(1)
	return nil
}

func (p *phoenix) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /phoenix", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.counter == nil {
			http.Error(w, "stopped", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "alive")
	})
}

const chaosToken = "chaos-token-for-the-test"

func startChaosHost(t *testing.T, comps ...service.Component) *service.Host {
	t.Helper()
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, ns, natsauth.Admin)
	opts.ChaosToken = chaosToken
	return servicetest.Start(t, opts, comps...)
}

func call(t *testing.T, h *service.Host, method, path, token, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+h.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A killed component is stopped at once: its route answers 503, its
// metrics are gone, /readyz names it. After the downtime it starts again
// with a fresh registry (registering the same metric again works), and
// its route answers for the new start.
func TestKillRestartsAfterTheDowntime(t *testing.T) {
	p := &phoenix{}
	h := startChaosHost(t, p)
	metrics := func() string { _, b := call(t, h, "GET", "/metrics", "", "", ""); return b }
	if !strings.Contains(metrics(), "rampart_phoenix_starts_total 1") {
		t.Fatalf("/metrics lacks the component's counter:\n%s", metrics())
	}
	p.mu.Lock()
	firstStopping := p.stopping
	p.mu.Unlock()

	code, body := call(t, h, "POST", service.PathComponents+"/watcher/kill", chaosToken, "application/json", `{"downtime": "1s"}`)
	if code != http.StatusAccepted {
		t.Fatalf("kill: %d %s", code, body)
	}
	var s service.ComponentState
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.Running || s.RestartAt == nil || s.KilledAt == nil || !s.Restartable {
		t.Fatalf("kill answered %s (%v)", body, err)
	}
	if p.stops.Load() != 1 {
		t.Fatalf("%d stops after the kill", p.stops.Load())
	}
	select {
	case <-firstStopping:
	default:
		t.Fatal("the killed start's Stopping channel is still open")
	}
	if code, _ := call(t, h, "GET", "/phoenix", "", "", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("the killed component's route answered %d", code)
	}
	if strings.Contains(metrics(), "rampart_phoenix") {
		t.Fatal("/metrics still serves the killed component's metrics")
	}
	if code, body := call(t, h, "GET", "/readyz", "", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "watcher: killed, restarting at") {
		t.Fatalf("/readyz while killed: %d %s", code, body)
	}
	if code, body := call(t, h, "POST", service.PathComponents+"/watcher/kill", chaosToken, "application/json", `{"downtime": "1s"}`); code != http.StatusConflict {
		t.Fatalf("a second kill while down: %d %s", code, body)
	}

	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		s, err := h.Component("watcher")
		if err != nil || !s.Running {
			return fmt.Errorf("not running again: %+v %v", s, err)
		}
		return nil
	})
	s, _ = h.Component("watcher")
	if p.starts.Load() != 2 || s.Restarts != 1 || s.Error != "" || s.RestartAt != nil {
		t.Fatalf("after the downtime: %d starts, state %+v", p.starts.Load(), s)
	}
	if code, body := call(t, h, "GET", "/phoenix", "", "", ""); code != http.StatusOK || body != "alive" {
		t.Fatalf("the restarted component's route: %d %s", code, body)
	}
	if !strings.Contains(metrics(), "rampart_phoenix_starts_total 1") {
		t.Fatalf("/metrics lacks the restarted component's counter:\n%s", metrics())
	}
	if code, _ := call(t, h, "GET", "/readyz", "", "", ""); code != http.StatusOK {
		t.Fatalf("/readyz after the restart: %d", code)
	}
}

// The kill route opens to the chaos token only, refuses what it cannot do
// precisely, and kills nothing on a bad request.
func TestKillRouteRefuses(t *testing.T) {
	p := &phoenix{}
	h := startChaosHost(t, p, &component{name: "notifier"})
	for _, tc := range []struct {
		name, method, path, token, ctype, body string
		code                                   int
		want                                   string
	}{
		{"no token", "POST", "/watcher/kill", "", "application/json", `{"downtime":"1s"}`, 401, "Authorization header missing"},
		{"wrong token", "POST", "/watcher/kill", "operator", "application/json", `{"downtime":"1s"}`, 401, "does not match"},
		{"state without token", "GET", "/watcher", "", "", "", 401, "authentication failed"},
		{"unknown", "POST", "/scanner/kill", chaosToken, "application/json", `{"downtime":"1s"}`, 404, `no such component: \"scanner\"`},
		{"not restartable", "POST", "/notifier/kill", chaosToken, "application/json", `{"downtime":"1s"}`, 409, "cannot be restarted"},
		{"form", "POST", "/watcher/kill", chaosToken, "application/x-www-form-urlencoded", "downtime=1s", 415, "want application/json"},
		{"no downtime", "POST", "/watcher/kill", chaosToken, "application/json", `{}`, 400, `is not a duration`},
		{"long", "POST", "/watcher/kill", chaosToken, "application/json", `{"downtime":"1h"}`, 400, "at most 5m0s"},
		{"negative", "POST", "/watcher/kill", chaosToken, "application/json", `{"downtime":"-1s"}`, 400, "want more than 0"},
		{"unknown field", "POST", "/watcher/kill", chaosToken, "application/json", `{"downtime":"1s","signal":9}`, 400, "signal"},
		{"large", "POST", "/watcher/kill", chaosToken, "application/json", `{"downtime":"` + strings.Repeat("1", 5000) + `s"}`, 413, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, h, tc.method, service.PathComponents+tc.path, tc.token, tc.ctype, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	if p.stops.Load() != 0 {
		t.Fatal("a refused request killed the component")
	}
	code, body := call(t, h, "GET", service.PathComponents+"/watcher", chaosToken, "", "")
	if code != 200 || !strings.Contains(body, `"running":true`) {
		t.Fatalf("state: %d %s", code, body)
	}
}

// Without a chaos token the host has no kill route at all.
func TestNoKillRouteWithoutToken(t *testing.T) {
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, ns, natsauth.Admin)
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), &phoenix{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	code, _ := call(t, h, "POST", service.PathComponents+"/watcher/kill", "", "application/json", `{"downtime":"1s"}`)
	if code != http.StatusNotFound {
		t.Fatalf("kill route without a chaos token: %d", code)
	}
}

// A shutdown during the downtime cancels the restart and does not stop the
// killed component a second time.
func TestShutdownWhileKilled(t *testing.T) {
	p := &phoenix{}
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, ns, natsauth.Admin)
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Kill(t.Context(), "watcher", time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second || p.stops.Load() != 1 || p.starts.Load() != 1 {
		t.Fatalf("shutdown took %s; %d stops, %d starts", time.Since(start), p.stops.Load(), p.starts.Load())
	}
}
