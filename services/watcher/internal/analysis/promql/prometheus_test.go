package promql_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/analysis/promql"
	"github.com/rampartci/rampart/services/watcher/internal/routertest"
)

// startPrometheus runs a real Prometheus server (Debian's prometheus
// package) on a free loopback port, scraping the fake router's /-/metrics
// and both upstreams' /metrics every second, with its storage in a
// temporary directory. It returns the server's URL once /-/ready answers.
// Without the binary the test fails when RAMPART_REQUIRE_PROMETHEUS=1 (CI)
// and is skipped otherwise.
func startPrometheus(t *testing.T, r *routertest.Router) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("RAMPART_REQUIRE_PROMETHEUS") == "1" {
			t.Fatalf("RAMPART_REQUIRE_PROMETHEUS=1 but no prometheus binary: %v (apt-get install prometheus)", err)
		}
		t.Skipf("no prometheus binary (%v); set RAMPART_REQUIRE_PROMETHEUS=1 to make this a failure", err)
	}
	dir := t.TempDir()
	host := func(url string) string { return strings.TrimPrefix(url, "http://") }
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: router
    metrics_path: %s
    static_configs:
      - targets: [%q]
  - job_name: stable
    static_configs:
      - targets: [%q]
        labels: {app: %s, version: stable}
  - job_name: canary
    static_configs:
      - targets: [%q]
        labels: {app: %s, version: canary}
`, policy.RouterMetricsPath, host(r.Metrics.URL), host(r.StableSrv.URL), r.App, host(r.CanarySrv.URL), r.App)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var out bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	url := "http://" + addr
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("prometheus exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %d", resp.StatusCode)
		}
		return nil
	})
	return url
}

// freePort picks a free loopback port. Prometheus binds it a moment later;
// the window for another process to take it is small.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// traffic adds canary and stable requests every 100ms until the test ends;
// setFailing makes a tenth of the canary's requests fail with 503.
func traffic(t *testing.T, r *routertest.Router) (setFailing func()) {
	var (
		mu      sync.Mutex
		failing bool
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			r.Serve(policy.VersionStable, 200, 20)
			r.Serve(policy.VersionCanary, 200, 9)
			mu.Lock()
			f := failing
			mu.Unlock()
			if f {
				r.Serve(policy.VersionCanary, 503, 1)
			} else {
				r.Serve(policy.VersionCanary, 200, 1)
			}
		}
	}()
	t.Cleanup(func() { close(done); wg.Wait() })
	return func() { mu.Lock(); failing = true; mu.Unlock() }
}

func TestRealPrometheusDetectsTheBreach(t *testing.T) {
	r := routertest.New(t, "shop")
	r.StableMem.Set(100 << 20)
	r.CanaryMem.Set(120 << 20)
	setFailing := traffic(t, r)
	url := startPrometheus(t, r)

	app := r.Policy(policy.ProviderPrometheus)
	app.Analysis.Prometheus = &policy.Prometheus{URL: url}
	since := time.Now()
	win, err := promql.New(nil).Open(t.Context(), analysis.Target{App: "shop", Since: since, Policy: app})
	if err != nil {
		t.Fatal(err)
	}

	// Healthy: once Prometheus has scraped enough, the canary passes.
	var last analysis.Reading
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if last, err = win.Read(t.Context()); err != nil {
			return err
		}
		if v := analysis.ErrorRate(last, app.Analysis.ErrorRate); v.Result != analysis.Pass {
			return fmt.Errorf("error rate %s: %s", v.Result, v.Description)
		}
		if v := analysis.Memory(last, app.Analysis.Memory); v.Result != analysis.Pass {
			return fmt.Errorf("memory %s: %s", v.Result, v.Description)
		}
		return nil
	})

	// Failing: 10% of the canary's requests answer 503.
	setFailing()
	var breach analysis.Verdict
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if last, err = win.Read(t.Context()); err != nil {
			return err
		}
		if breach = analysis.ErrorRate(last, app.Analysis.ErrorRate); breach.Result != analysis.Breach {
			return fmt.Errorf("error rate %s: %s", breach.Result, breach.Description)
		}
		return nil
	})
	t.Logf("detected: %s", breach.Description)

	// And memory, from the upstreams' gauges labelled by the scrape config.
	r.CanaryMem.Set(250 << 20)
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if last, err = win.Read(t.Context()); err != nil {
			return err
		}
		if v := analysis.Memory(last, app.Analysis.Memory); v.Result != analysis.Breach {
			return fmt.Errorf("memory %s: %s", v.Result, v.Description)
		}
		return nil
	})
}
