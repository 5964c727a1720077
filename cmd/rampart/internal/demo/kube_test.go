package demo

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// The pipeline in the apiserver world: a pushed image is scanned,
// promoted, run by the canary Deployment (its image set to the digest),
// given traffic step by step on the HTTPRoute, released to the stable
// Deployment; the next version's canary gets an Alertmanager alert, its
// weight goes to 0 and its Deployment is scaled down. The test plays the
// Deployment controller (nothing runs pods here): it writes each
// Deployment's status once a new generation is "rolled out".
func TestKubernetesRelease(t *testing.T) {
	srv := kubetest.Shared(t)
	crds, err := kubetest.GatewayAPICRDs()
	if err != nil {
		t.Fatal(err)
	}
	srv.InstallCRDs(t, crds)
	const ns = "shop"
	srv.Namespace(t, ns, nil)
	admin := srv.Clientset(t)
	dyn, err := dynamic.NewForConfig(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for name, replicas := range map[string]int32{"shop": 3, "shop-canary": 2} {
		if _, err := admin.AppsV1().Deployments(ns).Create(ctx, shopDeployment(name, replicas), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "shop", "namespace": ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "public", "namespace": "gateways"}},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "shop-stable", "port": int64(8080), "weight": int64(100)},
				map[string]any{"name": "shop-canary", "port": int64(8080), "weight": int64(0)},
			}}},
		},
	}}
	if _, err := dyn.Resource(httpRoutes).Namespace(ns).Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllerCtx, stopController := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); playDeploymentController(controllerCtx, t, admin, ns) }()
	t.Cleanup(func() { stopController(); <-done })

	// A Prometheus with no series yet: the watcher judges nothing, the
	// alert decides.
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	t.Cleanup(prom.Close)

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: deployer, user: {token: %s}}]
contexts: [{name: test, context: {cluster: test, user: deployer}}]
current-context: test
`, srv.URL, base64.StdEncoding.EncodeToString(srv.CAData), srv.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	tl := &timeline{out: &out, start: time.Now()}
	e, err := Start(ctx, Config{DataDir: t.TempDir(), Pause: time.Hour, Interval: time.Second, Logger: slog.New(slog.DiscardHandler),
		OnEvent: func(s Seen) { tl.printf("%s", describe(s)) },
		Kube: &Kube{Kubeconfig: kubeconfig, Namespace: ns, Route: "shop", StableBackend: "shop-stable", CanaryBackend: "shop-canary",
			Stable: "shop", Canary: "shop-canary", ScaleDownDelay: time.Second, Prometheus: prom.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	defer func() {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		t.Logf("timeline:\n%s", out.String())
	}()

	image := func(name string) string {
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	canaryWeight := func() int64 {
		r, err := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rules, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
		refs, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
		w, _, _ := unstructured.NestedInt64(refs[1].(map[string]any), "weight")
		return w
	}

	v1 := e.release(t, "v1", 0)
	v1Ref := e.ref(t, v1)
	if err := e.WaitStep(ctx, v1, 0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := image("shop-canary"); got != v1Ref {
		t.Fatalf("canary Deployment runs %q at the first step, want %s", got, v1Ref)
	}
	tl.printf("kube       Deployment %s/shop-canary runs %s", ns, v1Ref)
	if err := e.PromoteThrough(ctx, v1, 4, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := image("shop"); got != v1Ref {
		t.Fatalf("stable Deployment runs %q after the release, want %s", got, v1Ref)
	}
	if w := canaryWeight(); w != 0 {
		t.Fatalf("canary weight %d after the release", w)
	}
	tl.printf("kube       Deployment %s/shop runs %s; HTTPRoute %s/shop canary weight 0", ns, v1Ref, ns)

	v2 := e.release(t, "v2", 0)
	if err := e.WaitStep(ctx, v2, 0, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if w := canaryWeight(); w != 5 {
		t.Fatalf("HTTPRoute canary weight %d at step 0", w)
	}
	tl.printf("kube       HTTPRoute %s/shop canary weight 5; Deployment shop-canary runs %s", ns, image("shop-canary"))
	if err := e.Promote(ctx, v2.RolloutID); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitStep(ctx, v2, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if w := canaryWeight(); w != 25 {
		t.Fatalf("HTTPRoute canary weight %d at step 1", w)
	}
	tl.printf("kube       HTTPRoute %s/shop canary weight 25", ns)
	if err := e.waitWatcherLive(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Alert(ctx, "c0ffee", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	end, err := e.WaitEnd(ctx, v2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := events.RollbackOf(end.Event)
	if err != nil || rb.TrafficAtAbort != 25 {
		t.Fatalf("end of v2: %v (rollback at %d%%)", err, rb.TrafficAtAbort)
	}
	if w := canaryWeight(); w != 0 {
		t.Fatalf("HTTPRoute canary weight %d after the rollback", w)
	}
	tl.printf("kube       HTTPRoute %s/shop canary weight 0", ns)
	if err := waitUntil(ctx, 30*time.Second, "the canary Deployment scaled down", func() bool {
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, "shop-canary", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 0
	}); err != nil {
		t.Fatal(err)
	}
	tl.printf("kube       Deployment %s/shop-canary scaled to 0", ns)
	if got := image("shop"); got != v1Ref {
		t.Fatalf("stable Deployment runs %q after v2's rollback, want v1 %s", got, v1Ref)
	}
}

// ref is the image reference the Deployments run for a's artifact.
func (e *Env) ref(t *testing.T, a Approved) string {
	t.Helper()
	s, _, err := e.rec.wait(t.Context(), time.Second, a.mark, func(s Seen) bool {
		p, err := events.PromotionOf(s.Event)
		return err == nil && p.RolloutID == a.RolloutID
	})
	if err != nil {
		s, _, err = e.rec.wait(t.Context(), time.Second, 0, func(s Seen) bool {
			p, err := events.PromotionOf(s.Event)
			return err == nil && p.RolloutID == a.RolloutID
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	p, _ := events.PromotionOf(s.Event)
	o, err := events.ParseOCI(p.ArtifactID)
	if err != nil {
		t.Fatal(err)
	}
	return o.Ref()
}

func shopDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "registry.example.com/shop:0"}}},
			},
		},
	}
}

// playDeploymentController does what the Deployment controller and the
// kubelets would: a Deployment whose generation is new is, a moment later,
// observed with all its replicas updated and available.
func playDeploymentController(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns string) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("controller: %v", err)
			}
			return
		}
		for _, d := range list.Items {
			n := *d.Spec.Replicas
			s := d.Status
			if s.ObservedGeneration == d.Generation && s.UpdatedReplicas == n && s.AvailableReplicas == n && s.Replicas == n {
				continue
			}
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			if _, err := cs.AppsV1().Deployments(ns).UpdateStatus(ctx, &d, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				t.Logf("controller: %v", err) // a conflict with the deployer's patch: next tick
			}
		}
	}
}
