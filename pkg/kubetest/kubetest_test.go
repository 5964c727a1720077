package kubetest_test

import (
	"os"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "kubetest-tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RAMPART_TOOLS", dir)
	if got, err := kubetest.Lookup("kubetest-tool"); err != nil || got != tool {
		t.Errorf("from $RAMPART_TOOLS: %q, %v; want %q", got, err, tool)
	}
	t.Setenv("RAMPART_KUBETEST_TOOL", filepath.Join(dir, "absent"))
	if _, err := kubetest.Lookup("kubetest-tool"); !kubetest.IsMissing(err) {
		t.Errorf("RAMPART_KUBETEST_TOOL naming no file: %v, want ErrMissing", err)
	}
}

// TestServer checks the server authenticates the admin and ServiceAccount
// tokens and authorizes with RBAC.
func TestServer(t *testing.T) {
	srv := kubetest.Shared(t)
	srv.Namespace(t, "kubetest", map[string]string{"team": "platform"})
	token := srv.ServiceAccountToken(t, "kubetest", "default")
	cs, err := kubernetes.NewForConfig(srv.TokenConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Status.UserInfo.Username, "system:serviceaccount:kubetest:default"; got != want {
		t.Errorf("ServiceAccount token authenticates as %q, want %q", got, want)
	}
	if _, err := cs.CoreV1().Namespaces().Get(t.Context(), "kubetest", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a ServiceAccount without bindings read a namespace: %v", err)
	}
	ns, err := srv.Clientset(t).CoreV1().Namespaces().Get(t.Context(), "kubetest", metav1.GetOptions{})
	if err != nil || ns.Labels["team"] != "platform" {
		t.Errorf("admin: namespace %v, %v", ns, err)
	}
}

// TestGatewayAPI checks the Gateway API CRDs install and the apiserver
// validates and defaults HTTPRoutes as a cluster would.
func TestGatewayAPI(t *testing.T) {
	srv := kubetest.Shared(t)
	dir, err := kubetest.GatewayAPICRDs()
	if err != nil {
		t.Fatal(err)
	}
	srv.InstallCRDs(t, dir)
	srv.Namespace(t, "gateway", nil)
	dyn, err := dynamic.NewForConfig(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	routes := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}).Namespace("gateway")
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "gw"}},
			"rules":      []any{map[string]any{"backendRefs": []any{map[string]any{"name": "web-stable", "port": int64(80)}}}},
		},
	}}
	got, err := routes.Create(t.Context(), route, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs, _, _ := unstructured.NestedSlice(got.Object, "spec", "rules")
	weight, _, _ := unstructured.NestedInt64(refs[0].(map[string]any)["backendRefs"].([]any)[0].(map[string]any), "weight")
	if weight != 1 {
		t.Errorf("a backendRef without a weight is stored with weight %d, want the default 1", weight)
	}
	bad := []byte(`{"spec":{"rules":[{"backendRefs":[{"name":"web-stable","port":80,"weight":-1}]}]}}`)
	if _, err := routes.Patch(t.Context(), "web", types.MergePatchType, bad, metav1.PatchOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("a negative weight was not refused as invalid: %v", err)
	}
}
