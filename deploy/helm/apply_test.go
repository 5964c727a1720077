package helm_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
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
		for _, ns := range []string{appNamespace, "other"} {
			if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), webDeployment(ns), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
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
		_, err := deployer.AppsV1().Deployments("other").Get(t.Context(), "web", metav1.GetOptions{})
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

		// HTTPRoutes: what the deployer may do, asked of the apiserver's
		// authorizer (no Gateway API CRDs are needed for that).
		for _, tc := range []struct {
			ns, verb string
			want     bool
		}{{appNamespace, "get", true}, {appNamespace, "patch", true}, {appNamespace, "delete", false}, {appNamespace, "create", false}, {"other", "patch", false}} {
			ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: tc.ns, Verb: tc.verb, Group: "gateway.networking.k8s.io", Resource: "httproutes", Name: "web"}}}
			r, err := deployer.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), ssar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status.Allowed != tc.want {
				t.Errorf("deployer: %s httproutes in %s allowed %v, want %v", tc.verb, tc.ns, r.Status.Allowed, tc.want)
			}
		}

		for _, svc := range services {
			if svc == "deployer" {
				continue
			}
			cs := client(svc)
			_, err := cs.AppsV1().Deployments(appNamespace).Get(t.Context(), "web", metav1.GetOptions{})
			forbidden(svc+": get Deployment", err)
			_, err = cs.AppsV1().Deployments(appNamespace).Patch(t.Context(), "web", types.MergePatchType, patch, metav1.PatchOptions{})
			forbidden(svc+": patch Deployment", err)
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
