package helm_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestPrometheusRuleChecks checks the rules of the rendered PrometheusRule
// (the chart's own and files/rampart-rules.yaml) with promtool, as
// Prometheus would load them, and that every alert of the rule file is in it.
func TestPrometheusRuleChecks(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RAMPART_REQUIRE_PROMETHEUS") == "1" {
			t.Fatalf("RAMPART_REQUIRE_PROMETHEUS=1 but no promtool: %v (apt-get install prometheus)", err)
		}
		t.Skipf("no promtool (%v); set RAMPART_REQUIRE_PROMETHEUS=1 to make this a failure", err)
	}
	rules := ofKind(render(t, "--set", "monitoring.prometheusRule=true"), "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	spec, err := yaml.Marshal(rules[0].Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	own, err := os.ReadFile(filepath.Join(chartDir, "files", "rampart-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(own), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: "); ok && !strings.Contains(string(spec), "alert: "+name+"\n") {
			t.Errorf("alert %s of files/rampart-rules.yaml is not in the PrometheusRule", name)
		}
	}
}

// TestDashboardConfigMap checks the dashboard ConfigMap carries the label
// Grafana's sidecar looks for and the dashboard file as valid JSON, and
// that it can be turned off.
func TestDashboardConfigMap(t *testing.T) {
	cm := find(t, render(t), "ConfigMap", fullname+"-dashboard")
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("labels %v lack grafana_dashboard", cm.GetLabels())
	}
	data, _ := cm.Object["data"].(map[string]any)
	var dash struct {
		UID    string `json:"uid"`
		Panels []any  `json:"panels"`
	}
	if err := json.Unmarshal([]byte(data["rampart-dashboard.json"].(string)), &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard in the ConfigMap: %v (uid %q, %d panels)", err, dash.UID, len(dash.Panels))
	}
	for _, o := range ofKind(render(t, "--set", "monitoring.dashboard=false"), "ConfigMap") {
		if o.GetName() == fullname+"-dashboard" {
			t.Error("dashboard rendered with monitoring.dashboard=false")
		}
	}
}
