package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// monitoringDir holds the dashboard and the alerting rules the Helm chart
// ships (deploy/monitoring links to them).
const monitoringDir = "../../../../deploy/helm/rampart/files"

// rollBack releases v1 to 100%, then v2, promotes v2 to its second step and
// makes its canary fail: the deployer rolls it back and on-call is paged.
// It returns v2's rollout.
func rollBack(t *testing.T, e *Env, f Failure) Approved {
	t.Helper()
	a := e.canary(t)
	if err := e.Promote(t.Context(), a.RolloutID); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitStep(t.Context(), a, 1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.Inject(t.Context(), f, "siem-alert-"+a.RolloutID); err != nil {
		t.Fatal(err)
	}
	end, err := e.WaitEnd(t.Context(), a, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.RollbackOf(end.Event); err != nil {
		t.Fatalf("rollout %s did not roll back: %v", a.RolloutID, err)
	}
	e.waitPage(t, a.RolloutID)
	return a
}

// startPrometheus runs a real Prometheus (Debian's prometheus package)
// scraping the mesh's /metrics over HTTPS every second, and returns its URL
// once it is ready. Without the binary the test fails when
// RAMPART_REQUIRE_PROMETHEUS=1 (CI) and is skipped otherwise.
func startPrometheus(t *testing.T, e *Env) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("RAMPART_REQUIRE_PROMETHEUS") == "1" {
			t.Fatalf("RAMPART_REQUIRE_PROMETHEUS=1 but no prometheus binary: %v (apt-get install prometheus)", err)
		}
		t.Skipf("no prometheus binary (%v); set RAMPART_REQUIRE_PROMETHEUS=1 to make this a failure", err)
	}
	dir := t.TempDir()
	target, err := url.Parse(e.Mesh.HTTPURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rampart
    scheme: %s
    tls_config:
      ca_file: %s
    static_configs:
      - targets: [%q]
`, target.Scheme, e.Mesh.CAFile, target.Host)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	promURL := "http://" + addr
	runTool(t, bin, []string{"--config.file=" + cfgFile, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--log.level=warn"}, func() error {
		resp, err := http.Get(promURL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %d", resp.StatusCode)
		}
		return nil
	})
	return promURL
}

// promAPI GETs a Prometheus API path and decodes its data; an error status
// is an error naming Prometheus's reason.
func promAPI(promURL, path string, q url.Values, data any) error {
	resp, err := http.Get(promURL + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %d, %v", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// monitoringQueries is every query of the dashboard and the alerting rules,
// each named by where it comes from. Grafana's $__rate_interval becomes 1m,
// as Grafana would make it for this scrape interval.
func monitoringQueries(t *testing.T) map[string]string {
	t.Helper()
	queries := map[string]string{}
	raw, err := os.ReadFile(filepath.Join(monitoringDir, "rampart-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries["panel "+p.Title+" "+tg.RefID] = strings.ReplaceAll(tg.Expr, "$__rate_interval", "1m")
		}
	}
	raw, err = os.ReadFile(filepath.Join(monitoringDir, "rampart-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries["alert "+r.Alert] = r.Expr
		}
	}
	return queries
}

// rareMetrics are exported only once something this test does not do has
// happened: a forged or unsigned verdict (services/deployer's metrics.go).
var rareMetrics = []string{"rampart_deployer_verdicts_refused_total"}

// Every query of the shipped dashboard and alerting rules executes without
// error against a real Prometheus scraping a running mesh that has done one
// release and one rollback, and every Rampart metric they name is one the
// mesh exports.
func TestMonitoringQueriesRun(t *testing.T) {
	e := startEnv(t, time.Hour, 200)
	promURL := startPrometheus(t, e)
	rollBack(t, e, FailSIEM)

	queries := monitoringQueries(t)
	if len(queries) < 20 {
		t.Fatalf("only %d queries found in the dashboard and rules", len(queries))
	}
	metricName := regexp.MustCompile(`rampart_[a-z_]+`)
	named := map[string]bool{}
	for _, q := range queries {
		for _, m := range metricName.FindAllString(q, -1) {
			named[strings.TrimSuffix(m, "_bucket")] = true
		}
	}
	// Wait until a scrape after the rollback and page has been stored.
	natstest.CheckFor(t, 30*time.Second, 500*time.Millisecond, func() error {
		var names []string
		if err := promAPI(promURL, "/api/v1/label/__name__/values", nil, &names); err != nil {
			return err
		}
		var missing []string
		for m := range named {
			exported := slices.Contains(names, m) || slices.Contains(names, m+"_bucket")
			if !exported && !slices.Contains(rareMetrics, m) {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Errorf("not exported by the mesh: %s", strings.Join(missing, ", "))
		}
		return nil
	})
	for name, q := range queries {
		var data struct {
			ResultType string `json:"resultType"`
		}
		if err := promAPI(promURL, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
			t.Errorf("%s: %v\n%s", name, err, q)
		}
	}
}
