package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	p, err := Load("testdata/rampart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shop, ok := p.App("shop")
	if !ok || shop.Canary.Pause != 2*time.Second || shop.Analysis.Interval != time.Second || !shop.Analysis.SIEM.Enabled {
		t.Fatalf("shop = %+v", shop)
	}
	if shop.Notify.PagerDuty.RoutingKey.String() != "env:RAMPART_PD_ROUTING_KEY" || len(shop.Notify.ScanBlocked) != 1 {
		t.Fatalf("shop notify = %+v", shop.Notify)
	}
	cart, ok := p.AppForImage("registry.example.com/cart")
	if !ok || cart.Name != "cart" {
		t.Fatal("cart not found by image")
	}
	// Defaults fill what cart leaves out.
	if !slicesEqual(cart.Canary.Steps, DefaultSteps) || cart.Canary.Pause != DefaultPause || cart.Analysis.ErrorRate != DefaultErrorRate ||
		cart.Analysis.Memory != DefaultMemory || cart.Notify.ScanBlocked != nil {
		t.Fatalf("cart defaults = %+v", cart)
	}
	if !strings.HasPrefix(p.Digest, "sha256:") || len(p.Digest) != 71 {
		t.Fatalf("digest %q", p.Digest)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseProblems(t *testing.T) {
	const head = "version: 1\napps:\n  - name: shop\n    image: r/shop\n    environment: prod\n    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://a, canary: http://b}}\n"
	tests := []struct {
		name string
		yaml string
		want []string // each must appear among the problems
	}{
		{"empty", "", []string{"p.yaml: the policy is empty"}},
		{"not yaml", "apps: [", []string{"p.yaml:1:"}},
		{"unknown field", head + "    canray: {}\n", []string{"p.yaml:7: field canray not found in type App"}},
		{"wrong type", head + "    canary:\n      steps: five\n", []string{"p.yaml:8: cannot unmarshal !!str `five` into []int"}},
		{"bad duration", head + "    canary:\n      pause: soon\n", []string{"p.yaml:8:"}},
		{"pause shorter than two intervals", head + "    canary:\n      pause: 3s\n    analysis:\n      interval: 2s\n", []string{
			"p.yaml:8: apps[0].canary.pause: 3s is shorter than two analysis intervals (4s)"}},
		{"steps", head + "    canary:\n      steps: [5, 3, 120]\n", []string{
			"p.yaml:8: apps[0].canary.steps[1]: weight 3 must be above the previous step's 5",
			"p.yaml:8: apps[0].canary.steps[2]: weight 120 must be within 1..100",
			"apps[0].canary.steps[2]: the last step must be 100"}},
		{"missing fields reported at the parent", "version: 1\napps:\n  - name: Shop!\n", []string{
			`p.yaml:3: apps[0].name: "Shop!" must be lower-case`, "p.yaml:3: apps[0].image: is required", "p.yaml:3: apps[0].router.local: is required"}},
		{"version", "version: 2\napps: []\n", []string{"p.yaml:1: version: version 2 is not supported", "p.yaml:2: apps: at least one application"}},
		{"analysis", head + "    analysis:\n      provider: graphite\n      interval: 100ms\n      errorRate: {max: 1.5, minRequests: 0}\n      memory: {maxRatio: 0.5}\n", []string{
			`p.yaml:8: apps[0].analysis.provider: "graphite" is not a metrics provider`,
			"p.yaml:9: apps[0].analysis.interval: 100ms is below the minimum of 1s",
			"p.yaml:10: apps[0].analysis.errorRate.max: 1.5 must be a ratio",
			"apps[0].analysis.errorRate.minRequests: must be at least 1",
			"p.yaml:11: apps[0].analysis.memory.maxRatio: 0.5 must be above 1"}},
		{"notify", head + "    notify:\n      pagerduty: {routingKey: {env: A, file: b}, severity: loud}\n      released: [pagerduty, email]\n", []string{
			"p.yaml:8: apps[0].notify.pagerduty.routingKey: give env or file, not both",
			`apps[0].notify.pagerduty.severity: "loud" is not`,
			`p.yaml:9: apps[0].notify.released[1]: "email" is not a channel`}},
		{"unconfigured channel", head + "    notify:\n      scanBlocked: [slack]\n", []string{`apps[0].notify.scanBlocked[0]: channel "slack" is not configured`}},
		{"duplicates", head + "  - name: shop\n    image: r/shop\n    environment: prod\n    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://a, canary: http://b}}\n", []string{
			`p.yaml:7: apps[1].name: "shop" is already used by apps[0]`, `p.yaml:8: apps[1].image: "r/shop" is already used`}},
		{"gatewayapi", "version: 1\napps:\n  - name: a\n    image: r/a\n    environment: e\n    router:\n      type: gatewayapi\n      gatewayapi: {namespace: n, route: r, stableBackend: s, canaryBackend: s}\n", []string{
			"apps[0].router.gatewayapi.canaryBackend: must differ", "apps[0].analysis.provider: scrape reads the local router's metrics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantProblems(t, tt.yaml, tt.want) })
	}
}

// wantProblems checks that the policy doc (as p.yaml) is refused with each
// of want among its problems.
func wantProblems(t *testing.T, doc string, want []string) {
	t.Helper()
	_, err := Parse("p.yaml", []byte(doc))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("Parse = %v, want *Error", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestStoreKeepsValidPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	good, _ := os.ReadFile("testdata/rampart.yaml")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(path)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Current()
	if err := os.WriteFile(path, []byte("version: 1\napps: [{name: BAD}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil {
		t.Fatal("an invalid policy was accepted")
	}
	if s.Current() != before {
		t.Fatal("an invalid policy replaced the valid one")
	}
	changed, err := func() (bool, error) {
		_ = os.WriteFile(path, append(good, []byte("\n# edited\n")...), 0o644)
		return s.Reload()
	}()
	if err != nil || !changed || s.Current().Digest == before.Digest {
		t.Fatalf("valid edit: changed=%v err=%v", changed, err)
	}
	if _, err := NewStore(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("a missing policy file was accepted")
	}
}

func TestSecret(t *testing.T) {
	t.Setenv("RAMPART_TEST_SECRET", "s3cr3t")
	file := filepath.Join(t.TempDir(), "key")
	_ = os.WriteFile(file, []byte("from-file\n"), 0o600)
	for _, tt := range []struct {
		s    Secret
		want string
		err  string
	}{
		{Secret{Env: "RAMPART_TEST_SECRET"}, "s3cr3t", ""},
		{Secret{File: file}, "from-file", ""},
		{Secret{Env: "RAMPART_TEST_UNSET"}, "", "env:RAMPART_TEST_UNSET: environment variable is not set"},
		{Secret{File: file + ".missing"}, "", "no such file"},
		{Secret{}, "", "unset"},
	} {
		got, err := tt.s.Resolve()
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%v: got %q, %v", tt.s, got, err)
		}
		if strings.Contains(tt.s.String(), "s3cr3t") {
			t.Errorf("String leaks the value")
		}
	}
}

// The example in the docs stays a valid policy.
func TestDocsExample(t *testing.T) {
	p, err := Load(filepath.Join("..", "..", "docs", "examples", "rampart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.App("shop"); !ok {
		t.Fatal("the example has no shop app")
	}
}
