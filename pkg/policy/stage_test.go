package policy

import (
	"path/filepath"
	"testing"
	"time"
)

const stagedHead = "version: 1\napps:\n  - name: shop\n    image: r/shop\n    environment: prod\n    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://a, canary: http://b}}\n"

func TestStages(t *testing.T) {
	p, err := Parse("/etc/rampart/rampart.yaml", []byte(stagedHead+`    stages:
      - name: staging
        url: http://127.0.0.1:9001
        checks:
          dast: {openapi: /openapi.json}
          contracts: [contracts/frontend.yaml, /abs/mobile.yaml]
      - name: preprod
        environment: pre
        url: https://pre.example.com
        checks: {dast: {paths: [/, /items]}, timeout: 5s}
      - name: production
`))
	if err != nil {
		t.Fatal(err)
	}
	shop, _ := p.App("shop")
	pre := shop.PreProduction()
	if len(pre) != 2 || pre[0].Name != "staging" || pre[1].Name != "preprod" {
		t.Fatalf("pre-production = %+v", pre)
	}
	st := pre[0]
	if st.Environment != "staging" || st.Checks.Timeout != DefaultStageTimeout || st.Checks.DAST.OpenAPI != "/openapi.json" ||
		len(st.Checks.DAST.Paths) != 1 || st.Checks.DAST.Paths[0] != "/" {
		t.Fatalf("staging = %+v", st)
	}
	if want := filepath.Join("/etc/rampart", "contracts/frontend.yaml"); st.Checks.Contracts[0] != want || st.Checks.Contracts[1] != "/abs/mobile.yaml" {
		t.Fatalf("contracts = %v, want %s first", st.Checks.Contracts, want)
	}
	if pre[1].Environment != "pre" || pre[1].Checks.Timeout != 5*time.Second {
		t.Fatalf("preprod = %+v", pre[1])
	}
	if n, ok := shop.Next("staging"); !ok || n.Name != "preprod" {
		t.Fatalf("Next(staging) = %v, %v", n, ok)
	}
	if _, ok := shop.Next("preprod"); ok {
		t.Fatal("production, not a stage, comes after preprod")
	}
	if s, ok := shop.StageForEnvironment("pre"); !ok || s.Name != "preprod" {
		t.Fatalf("StageForEnvironment(pre) = %v, %v", s, ok)
	}

	// Without stages, and with production alone, there is nothing before
	// the canary.
	for _, doc := range []string{stagedHead, stagedHead + "    stages: [{name: production}]\n"} {
		p, err := Parse("p.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := p.App("shop"); len(a.PreProduction()) != 0 {
			t.Fatalf("pre-production = %+v", a.PreProduction())
		}
	}
}

func TestStageProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"no url, no checks", "    stages:\n      - name: staging\n", []string{
			`p.yaml:8: apps[0].stages[0].url: "" is not an http(s) URL`,
			"p.yaml:8: apps[0].stages[0].checks: a stage must check something"}},
		{"production not last", "    stages:\n      - name: production\n      - name: staging\n        url: http://s\n        checks: {dast: {}}\n", []string{
			"p.yaml:8: apps[0].stages[0].name: production is the application's router and canary: it must be the last stage"}},
		{"production with a url", "    stages:\n      - name: production\n        url: http://p\n", []string{
			"p.yaml:8: apps[0].stages[0]: production takes no url"}},
		{"names", "    stages:\n      - name: Staging!\n        url: http://s\n        checks: {dast: {}}\n      - {name: qa, url: http://q, checks: {dast: {}}}\n      - {name: qa, url: http://q2, checks: {dast: {}}}\n      - {url: http://x}\n", []string{
			`p.yaml:8: apps[0].stages[0].name: "Staging!" must be lower-case`,
			`p.yaml:12: apps[0].stages[2].name: "qa" is already used by stages[1]`,
			`p.yaml:12: apps[0].stages[2].environment: "qa" is already used by stages[1]`,
			"p.yaml:13: apps[0].stages[3].name: is required"}},
		{"environment is production's", "    stages:\n      - {name: staging, environment: prod, url: http://s, checks: {contracts: [c.yaml]}}\n", []string{
			`apps[0].stages[0].environment: "prod" is the application's production environment`}},
		{"checks", "    stages:\n      - name: staging\n        url: http://s\n        checks:\n          timeout: -1s\n          dast: {openapi: spec.json, paths: [items]}\n          contracts: ['']\n", []string{
			"p.yaml:11: apps[0].stages[0].checks.timeout: must not be negative",
			`p.yaml:12: apps[0].stages[0].checks.dast.openapi: "spec.json" is neither a path`,
			`p.yaml:12: apps[0].stages[0].checks.dast.paths[0]: "items" must start with /`,
			"p.yaml:13: apps[0].stages[0].checks.contracts[0]: is empty"}},
		{"unknown field", "    stages:\n      - name: staging\n        urls: http://s\n", []string{"p.yaml:9: field urls not found in type Stage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantProblems(t, stagedHead+tt.yaml, tt.want) })
	}
}
