package app

import (
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/workload/git"
	"github.com/rampartci/rampart/services/deployer/internal/workload/kube"
)

func TestNewWorkload(t *testing.T) {
	if w, err := newWorkload(policy.App{Name: "shop"}, workloadOptions{}); w != nil || err != nil {
		t.Fatalf("no workload in the policy: %v, %v", w, err)
	}
	base := policy.Workload{Namespace: "shop", Stable: "shop", Canary: "shop-canary", Kubeconfig: "/etc/kube", ProgressDeadline: time.Minute}
	var asked string
	client := func(kubeconfig string) (kubernetes.Interface, error) {
		asked = kubeconfig
		return fake.NewClientset(), nil
	}

	k := base
	k.Type = policy.WorkloadKubernetes
	w, err := newWorkload(policy.App{Name: "shop", Workload: &k}, workloadOptions{Kubernetes: client})
	if _, ok := w.(*kube.Workload); !ok || err != nil || asked != "/etc/kube" {
		t.Fatalf("kubernetes: %T, %v (kubeconfig %q)", w, err, asked)
	}
	g := base
	g.Type = policy.WorkloadGit
	g.Git = &policy.GitWorkload{URL: "file:///srv/apps.git", Branch: "main", Author: policy.DefaultGitAuthor}
	w, err = newWorkload(policy.App{Name: "shop", Workload: &g}, workloadOptions{Kubernetes: client})
	if _, ok := w.(*git.Workload); !ok || err != nil {
		t.Fatalf("git: %T, %v", w, err)
	}

	boom := errors.New("no cluster")
	_, err = newWorkload(policy.App{Name: "shop", Workload: &k}, workloadOptions{Kubernetes: func(string) (kubernetes.Interface, error) { return nil, boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("client error: %v", err)
	}
	u := base
	u.Type = "helm"
	if _, err := newWorkload(policy.App{Name: "shop", Workload: &u}, workloadOptions{Kubernetes: client}); err == nil {
		t.Fatal("an unknown workload type was accepted")
	}
}
