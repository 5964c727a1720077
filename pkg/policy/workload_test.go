package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const workloadHead = "version: 1\napps:\n  - name: shop\n    image: r/shop\n    environment: prod\n    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://a, canary: http://b}}\n"

func TestWorkload(t *testing.T) {
	kube := workloadHead + "    workload:\n      type: kubernetes\n      namespace: shop\n      stable: shop\n      canary: shop-canary\n"
	p, err := Parse("p.yaml", []byte(kube))
	if err != nil {
		t.Fatal(err)
	}
	w := p.Apps[0].Workload
	if w.Type != WorkloadKubernetes || w.ProgressDeadline != DefaultProgressDeadline || *w.ScaleDownDelay != DefaultScaleDownDelay || w.Git != nil {
		t.Fatalf("kubernetes workload = %+v", w)
	}

	git := workloadHead + `    workload:
      type: git
      namespace: shop
      stable: shop
      canary: shop-canary
      scaleDownDelay: 5s
      git:
        url: https://git.example.com/platform/apps.git
        stable: {path: shop/stable/kustomization.yaml, image: shop}
        canary: {path: shop/values.yaml, valuesKey: canary.image}
        username: {env: GIT_USER}
        password: {file: /var/run/secrets/git/token}
`
	p, err = Parse("p.yaml", []byte(git))
	if err != nil {
		t.Fatal(err)
	}
	w = p.Apps[0].Workload
	if *w.ScaleDownDelay != 5*time.Second || w.Git.Branch != DefaultGitBranch || w.Git.Author != DefaultGitAuthor ||
		!w.Git.Stable.Kustomization() || w.Git.Canary.Kustomization() || w.Git.Password.String() != "file:/var/run/secrets/git/token" {
		t.Fatalf("git workload = %+v %+v", w, w.Git)
	}

	// 0s is set, not unset: the canary is scaled down at once.
	p, err = Parse("p.yaml", []byte(kube+"      scaleDownDelay: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Apps[0].Workload.ScaleDownDelay; d == nil || *d != 0 {
		t.Fatalf("scaleDownDelay 0s = %v, want 0", d)
	}
}

func TestWorkloadProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"type", "    workload: {type: helm, namespace: shop, stable: a, canary: b}\n", []string{
			`p.yaml:7: apps[0].workload.type: "helm" is not a workload`}},
		{"names", "    workload:\n      type: kubernetes\n      namespace: Shop\n      stable: same\n      canary: same\n      progressDeadline: 10ms\n", []string{
			`p.yaml:9: apps[0].workload.namespace: "Shop" is not a Kubernetes namespace name`,
			"p.yaml:11: apps[0].workload.canary: must differ from stable",
			"p.yaml:12: apps[0].workload.progressDeadline: 10ms must be at least 1s"}},
		{"negative delay", "    workload: {type: kubernetes, namespace: shop, stable: a, canary: b, scaleDownDelay: -1s}\n", []string{
			"p.yaml:7: apps[0].workload.scaleDownDelay: must not be negative"}},
		{"missing deployments", "    workload:\n      type: kubernetes\n", []string{
			`p.yaml:7: apps[0].workload.namespace: "" is not`, `p.yaml:7: apps[0].workload.stable: "" is not a Deployment name`}},
		{"git needs git", "    workload: {type: git, namespace: shop, stable: a, canary: b}\n", []string{
			"p.yaml:7: apps[0].workload.git: is required for workload type git"}},
		{"git only for git", "    workload: {type: kubernetes, namespace: shop, stable: a, canary: b, git: {url: file:///r}}\n", []string{
			"apps[0].workload.git: is only for workload type git"}},
		{"git fields", `    workload:
      type: git
      namespace: shop
      stable: a
      canary: b
      git:
        url: https://user:pw@git.example.com/r.git
        branch: "main..x"
        stable: {path: ../outside.yaml, image: shop, valuesKey: image}
        canary: {path: values.yaml, valuesKey: "canary image"}
        username: {env: U}
        author: rampart
`, []string{
			"p.yaml:13: apps[0].workload.git.url: must not carry credentials",
			`p.yaml:14: apps[0].workload.git.branch: "main..x" is not a branch name`,
			`p.yaml:15: apps[0].workload.git.stable.path: "../outside.yaml" must be relative`,
			"p.yaml:15: apps[0].workload.git.stable: give image or valuesKey, not both",
			`p.yaml:16: apps[0].workload.git.canary.valuesKey: "canary image" is not a dotted key`,
			"p.yaml:12: apps[0].workload.git.password: username and password go together",
			`p.yaml:18: apps[0].workload.git.author: "rampart" is not "Name <email>"`}},
		{"git target", "    workload: {type: git, namespace: shop, stable: a, canary: b, git: {url: 'ftp://x/r', stable: {path: k.yaml}, canary: {path: k.yaml}}}\n", []string{
			`apps[0].workload.git.url: "ftp://x/r" is not an https or file URL`,
			"apps[0].workload.git.stable: give image (a kustomization images entry) or valuesKey"}},
		{"ssh", "    workload: {type: git, namespace: shop, stable: a, canary: b, git: {url: 'ssh://git@x/r', stable: {path: k.yaml, image: a}, canary: {path: v.yaml, valuesKey: a}}}\n", []string{
			`apps[0].workload.git.url: "ssh://git@x/r" is not an https or file URL`}},
		{"unknown field", "    workload: {type: kubernetes, namespace: shop, stable: a, canary: b, image: x}\n", []string{
			"p.yaml:7: field image not found in type Workload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantProblems(t, workloadHead+tt.yaml, tt.want) })
	}
}

// wantProblems parses doc as p.yaml and checks that each of want appears
// among its problems.
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

// A workload can run the application's pre-production stages: each names
// its Deployment, in the workload's namespace or another; with git, each
// also names where its image is written.
func TestWorkloadStages(t *testing.T) {
	stages := "    stages:\n      - {name: staging, url: http://s, checks: {dast: {}}}\n      - {name: qa, url: http://q, checks: {dast: {}}}\n"
	doc := workloadHead + stages + "    workload:\n      type: kubernetes\n      namespace: shop\n      stable: shop\n      canary: shop-canary\n      stages: {staging: shop-staging, qa: qa/shop}\n"
	p, err := Parse("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	w := p.Apps[0].Workload
	for stage, want := range map[string]string{"staging": "shop/shop-staging", "qa": "qa/shop"} {
		if ns, name, ok := w.StageDeployment(stage); !ok || ns+"/"+name != want {
			t.Errorf("stage %s runs in %s/%s (%v), want %s", stage, ns, name, ok, want)
		}
	}
	if _, _, ok := w.StageDeployment("production"); ok {
		t.Error("the workload runs production as a stage")
	}

	for _, tc := range []struct {
		name, workload string
		want           []string
	}{
		{"unknown stage", "stages: {preprod: shop-pre, production: shop-prod}", []string{
			`p.yaml:15: apps[0].workload.stages.preprod: "preprod" is not a pre-production stage of the application`,
			`p.yaml:15: apps[0].workload.stages.production: "production" is not a pre-production stage of the application`}},
		{"names", "stages: {staging: Shop_Staging, qa: shop-canary}", []string{
			`p.yaml:15: apps[0].workload.stages.qa: Deployment shop/shop-canary already runs canary`,
			`p.yaml:15: apps[0].workload.stages.staging: "Shop_Staging" is not a Deployment ([namespace/]name)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblems(t, workloadHead+stages+"    workload:\n      type: kubernetes\n      namespace: shop\n      stable: shop\n      canary: shop-canary\n      "+tc.workload+"\n", tc.want)
		})
	}

	git := workloadHead + stages + `    workload:
      type: git
      namespace: shop
      stable: shop
      canary: shop-canary
      stages: {staging: shop-staging}
      git:
        url: https://git.example.com/platform/apps.git
        stable: {path: shop/values.yaml, valuesKey: stable.image}
        canary: {path: shop/values.yaml, valuesKey: canary.image}
        stages:
          staging: {path: shop/values.yaml, valuesKey: staging.image}
`
	p, err = Parse("p.yaml", []byte(git))
	if err != nil {
		t.Fatal(err)
	}
	if g := p.Apps[0].Workload.Git; g.Stages["staging"].ValuesKey != "staging.image" {
		t.Fatalf("git stages = %+v", g.Stages)
	}
	bad := strings.Replace(git, "staging.image", "canary.image", 1)
	bad = strings.Replace(bad, "stages: {staging: shop-staging}", "stages: {staging: shop-staging, qa: shop-qa}", 1)
	wantProblems(t, bad, []string{
		"apps[0].workload.git.stages.staging: writes the same entry as canary",
		"apps[0].workload.git.stages: has no target for stage qa",
	})
}
