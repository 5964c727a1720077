// Package clustertest is what the deployer's tests against a real
// kube-apiserver (pkg/kubetest) share: a TestMain that stops the server and
// checks for leaked goroutines, and the deployer's own RBAC as the Helm
// chart renders it, so that the workload and the routers are tested with
// exactly the permissions they get in a cluster.
package clustertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/rampartci/rampart/pkg/kubetest"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// Main is a TestMain body: the tests, then the shared apiserver stopped,
// then goleak (with natstest.LeakOptions, as every service test).
func Main(m *testing.M) {
	goleak.VerifyTestMain(kubeMain{m}, natstest.LeakOptions...)
}

type kubeMain struct{ m *testing.M }

func (k kubeMain) Run() int { return kubetest.Main(k.m) }

// Release is the Helm release name the deployer's RBAC is rendered with.
const Release = "rampart"

// chartDir is deploy/helm, found from this file.
func chartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "deploy", "helm")
}

// DeployerConfig applies the chart's deployer Role and RoleBinding for
// namespace ns (helm template --show-only templates/rbac.yaml, with
// deployer.rbac.namespaces=[ns] and the release in ns), makes the
// deployer's ServiceAccount, and returns a client configuration with that
// ServiceAccount's token: what the deployer's pod has in a cluster.
func DeployerConfig(t testing.TB, srv *kubetest.Server, ns string) *rest.Config {
	t.Helper()
	helm, err := kubetest.Lookup("helm")
	if err != nil {
		kubetest.Skip(t, err)
	}
	dir := chartDir()
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), helm, "template", Release, filepath.Join(dir, "rampart"), "--namespace", ns,
		"-f", filepath.Join(dir, "testdata", "values.yaml"), "--set-file", "policy.rampartYaml="+filepath.Join(dir, "..", "..", "docs", "examples", "rampart.yaml"),
		"--set", "deployer.rbac.namespaces[0]="+ns, "--show-only", "templates/rbac.yaml")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	objs, err := kubetest.Objects(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	sa := ""
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		res := schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version}
		switch gvk.Kind {
		case "Role":
			res.Resource = "roles"
		case "RoleBinding":
			res.Resource = "rolebindings"
			subjects, _, _ := unstructuredSubjects(o.Object)
			sa = subjects
		default:
			t.Fatalf("templates/rbac.yaml renders a %s; this helper knows Role and RoleBinding", gvk.Kind)
		}
		if _, err := dyn.Resource(res).Namespace(o.GetNamespace()).Create(t.Context(), o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	if sa == "" {
		t.Fatal("the chart renders no RoleBinding for the deployer")
	}
	_, err = srv.Clientset(t).CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, sa, err)
	}
	return srv.TokenConfig(srv.ServiceAccountToken(t, ns, sa))
}

// unstructuredSubjects is the name of the RoleBinding's one ServiceAccount.
func unstructuredSubjects(obj map[string]any) (string, bool, error) {
	subjects, _ := obj["subjects"].([]any)
	if len(subjects) != 1 {
		return "", false, fmt.Errorf("%d subjects", len(subjects))
	}
	s, _ := subjects[0].(map[string]any)
	name, _ := s["name"].(string)
	return name, name != "", nil
}
