package helm_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/rampartci/rampart/pkg/kubetest"
)

// warnings collects the apiserver's Warning headers (PodSecurity reports
// a violating pod template of a Deployment as one).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// TestApply installs the rendered chart on a real kube-apiserver with
// server-side apply and strict field validation, into a namespace that
// enforces the restricted Pod Security Standard, then checks RBAC with the
// ServiceAccounts' own tokens.
func TestApply(t *testing.T) {
	objs := render(t) // first: skips without helm before starting the apiserver
	srv := kubetest.Shared(t)
	srv.Namespace(t, namespace, map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest",
	})
	srv.Namespace(t, appNamespace, nil)
	srv.Namespace(t, "other", nil)

	cfg := srv.Config()
	warn := &warnings{}
	cfg.WarningHandler = warn
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))

	apply := func(t *testing.T, o *unstructured.Unstructured, dryRun bool) error {
		t.Helper()
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s: the apiserver does not serve it: %w", gvk, err)
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: "rampart-chart-test", Force: new(true), FieldValidation: "Strict"}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err = dyn.Resource(m.Resource).Namespace(o.GetNamespace()).Patch(t.Context(), o.GetName(), types.ApplyPatchType, data, opts)
		return err
	}

	t.Run("every object accepted", func(t *testing.T) {
		for _, o := range objs {
			if o.GetNamespace() == "" {
				t.Errorf("%s %s has no namespace", o.GetKind(), o.GetName())
			}
			if err := apply(t, o, false); err != nil {
				t.Errorf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
			for _, w := range warn.take() {
				t.Errorf("apply %s %s: warning: %s", o.GetKind(), o.GetName(), w)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// PodSecurity admission only warns about a Deployment's template; it
	// enforces on pods. Each workload's pod, made bare, must be admitted.
	t.Run("pods admitted under restricted", func(t *testing.T) {
		for _, o := range ofKind(objs, "Deployment", "StatefulSet") {
			pod := barePod(t, o)
			if err := apply(t, pod, true); err != nil {
				t.Errorf("pod of %s %s refused: %v", o.GetKind(), o.GetName(), err)
			}
			warn.take()
		}
		// The check is real: the same pod with its capabilities kept is
		// refused.
		pod := barePod(t, find(t, objs, "Deployment", fullname+"-notifier"))
		cs, _, _ := unstructured.NestedSlice(pod.Object, "spec", "containers")
		unstructured.RemoveNestedField(cs[0].(map[string]any), "securityContext", "capabilities")
		_ = unstructured.SetNestedSlice(pod.Object, cs, "spec", "containers")
		if err := apply(t, pod, true); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "restricted") {
			t.Errorf("a pod that keeps its capabilities was not refused by PodSecurity: %v", err)
		}
		warn.take()
	})

	t.Run("RBAC", func(t *testing.T) {
		admin := srv.Clientset(t)
		dir, err := kubetest.GatewayAPICRDs()
		if err != nil {
			t.Fatal(err)
		}
		srv.InstallCRDs(t, dir)
		for _, ns := range []string{appNamespace, "other"} {
			if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), webDeployment(ns), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := dyn.Resource(httpRoutes).Namespace(ns).Create(t.Context(), webRoute(), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			warn.take()
		}
		client := func(svc string) kubernetes.Interface {
			cs, err := kubernetes.NewForConfig(srv.TokenConfig(srv.ServiceAccountToken(t, namespace, fullname+"-"+svc)))
			if err != nil {
				t.Fatal(err)
			}
			return cs
		}
		patch := []byte(`{"metadata":{"annotations":{"rampart.dev/test":"patched"}}}`)
		deployer := client("deployer")
		if _, err := deployer.AppsV1().Deployments(appNamespace).Get(t.Context(), "web", metav1.GetOptions{}); err != nil {
			t.Errorf("deployer: get Deployment in %s: %v", appNamespace, err)
		}
		if d, err := deployer.AppsV1().Deployments(appNamespace).Patch(t.Context(), "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Errorf("deployer: patch Deployment in %s: %v", appNamespace, err)
		} else if d.Annotations["rampart.dev/test"] != "patched" {
			t.Errorf("deployer: patch not applied: %v", d.Annotations)
		}
		forbidden := func(what string, err error) {
			t.Helper()
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: want Forbidden, got %v", what, err)
			}
		}
		_, err = deployer.AppsV1().Deployments("other").Get(t.Context(), "web", metav1.GetOptions{})
		forbidden("deployer: get Deployment in a namespace the values do not name", err)
		_, err = deployer.AppsV1().Deployments("other").Patch(t.Context(), "web", types.MergePatchType, patch, metav1.PatchOptions{})
		forbidden("deployer: patch Deployment in a namespace the values do not name", err)
		forbidden("deployer: delete Deployment", deployer.AppsV1().Deployments(appNamespace).Delete(t.Context(), "web", metav1.DeleteOptions{}))
		_, err = deployer.AppsV1().Deployments(appNamespace).List(t.Context(), metav1.ListOptions{})
		forbidden("deployer: list Deployments", err)
		_, err = deployer.CoreV1().Secrets(namespace).List(t.Context(), metav1.ListOptions{})
		forbidden("deployer: list Secrets in its own namespace", err)
		_, err = deployer.CoreV1().Pods(appNamespace).List(t.Context(), metav1.ListOptions{})
		forbidden("deployer: list Pods", err)

		// HTTPRoutes: the deployer sets a canary's weight where it may.
		routes := func(cfg *rest.Config, ns string) dynamic.ResourceInterface {
			d, err := dynamic.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return d.Resource(httpRoutes).Namespace(ns)
		}
		deployerCfg := srv.TokenConfig(srv.ServiceAccountToken(t, namespace, fullname+"-deployer"))
		weights := []byte(`{"spec":{"rules":[{"backendRefs":[{"name":"web-stable","port":80,"weight":95},{"name":"web-canary","port":80,"weight":5}]}]}}`)
		if _, err := routes(deployerCfg, appNamespace).Get(t.Context(), "web", metav1.GetOptions{}); err != nil {
			t.Errorf("deployer: get HTTPRoute in %s: %v", appNamespace, err)
		}
		if r, err := routes(deployerCfg, appNamespace).Patch(t.Context(), "web", types.MergePatchType, weights, metav1.PatchOptions{}); err != nil {
			t.Errorf("deployer: patch HTTPRoute weights in %s: %v", appNamespace, err)
		} else if w := canaryWeight(r); w != 5 {
			t.Errorf("deployer: HTTPRoute canary weight %d after the patch, want 5", w)
		}
		_, err = routes(deployerCfg, "other").Patch(t.Context(), "web", types.MergePatchType, weights, metav1.PatchOptions{})
		forbidden("deployer: patch HTTPRoute in a namespace the values do not name", err)
		forbidden("deployer: delete HTTPRoute", routes(deployerCfg, appNamespace).Delete(t.Context(), "web", metav1.DeleteOptions{}))

		for _, svc := range services {
			if svc == "deployer" {
				continue
			}
			cs := client(svc)
			_, err := cs.AppsV1().Deployments(appNamespace).Get(t.Context(), "web", metav1.GetOptions{})
			forbidden(svc+": get Deployment", err)
			_, err = cs.AppsV1().Deployments(appNamespace).Patch(t.Context(), "web", types.MergePatchType, patch, metav1.PatchOptions{})
			forbidden(svc+": patch Deployment", err)
			_, err = routes(srv.TokenConfig(srv.ServiceAccountToken(t, namespace, fullname+"-"+svc)), appNamespace).Patch(t.Context(), "web", types.MergePatchType, weights, metav1.PatchOptions{})
			forbidden(svc+": patch HTTPRoute", err)
		}
	})
}

// barePod is the pod a Deployment or StatefulSet would make, with an
// emptyDir for each volume claim template.
func barePod(t *testing.T, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	tmpl := podTemplate(t, o)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: o.GetName() + "-pod", Namespace: o.GetNamespace(), Labels: tmpl.Labels},
		Spec:       tmpl.Spec,
	}
	if o.GetKind() == "StatefulSet" {
		ss := into[appsv1.StatefulSet](t, o.Object)
		for _, c := range ss.Spec.VolumeClaimTemplates {
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}
	}
	m, err := runtimeToUnstructured(pod)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runtimeToUnstructured(v any) (*unstructured.Unstructured, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	return u, u.UnmarshalJSON(b)
}

var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// webRoute is an application's HTTPRoute, all traffic on stable.
func webRoute() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "gateway"}},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "web-stable", "port": int64(80), "weight": int64(100)},
				map[string]any{"name": "web-canary", "port": int64(80), "weight": int64(0)},
			}}},
		},
	}}
}

// canaryWeight is the weight of the second backend of route's first rule.
func canaryWeight(route *unstructured.Unstructured) int64 {
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	if len(rules) == 0 {
		return -1
	}
	refs, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
	if len(refs) < 2 {
		return -1
	}
	w, _, _ := unstructured.NestedInt64(refs[1].(map[string]any), "weight")
	return w
}

// webDeployment is an application's Deployment for the deployer to patch.
func webDeployment(ns string) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web@sha256:" + strings.Repeat("0", 64)}}},
			},
		},
	}
}
