package kube_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/kubetest"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/internal/clustertest"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
	"github.com/rampartci/rampart/services/deployer/internal/workload"
	"github.com/rampartci/rampart/services/deployer/internal/workload/kube"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

const (
	repo    = "registry.example.com/shop"
	digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var shop = policy.App{Name: "shop", Image: repo}

// deployment is an application Deployment as a chart would make it: the
// app container and a sidecar.
func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: repo + ":1.0"},
					{Name: "proxy", Image: "registry.example.com/envoy:1.30"},
				}},
			},
		},
	}
}

// controller plays the Deployment controller for one Deployment: it writes
// the status subresource as the controller does once a generation's pods
// are up (nothing runs pods here).
type controller struct {
	t  *testing.T
	cs kubernetes.Interface
	ns string
}

func (c controller) get(name string) *appsv1.Deployment {
	c.t.Helper()
	d, err := c.cs.AppsV1().Deployments(c.ns).Get(c.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// status writes d's status: observed generation, updated and available
// replicas, and the Progressing condition with reason.
func (c controller) status(name string, observed bool, updated, available int32, reason string) {
	c.t.Helper()
	d := c.get(name)
	d.Status.ObservedGeneration = d.Generation - 1
	if observed {
		d.Status.ObservedGeneration = d.Generation
	}
	d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, d.Status.ReadyReplicas = updated, updated, available, available
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
		Reason: reason, Message: "ReplicaSet " + name + "-5d8 " + reason, LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if reason == "ProgressDeadlineExceeded" {
		d.Status.Conditions[0].Status = corev1.ConditionFalse
		d.Status.Conditions[0].Message = `ReplicaSet "` + name + `-5d8" has timed out progressing.`
	}
	if _, err := c.cs.AppsV1().Deployments(c.ns).UpdateStatus(c.t.Context(), d, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// setup makes namespace ns with the two Deployments, and a workload on
// them through a client with the chart's Role only (get and patch on
// Deployments), as the deployer's ServiceAccount has.
func setup(t *testing.T, ns string, conf policy.Workload) (*kube.Workload, controller) {
	t.Helper()
	srv := kubetest.Shared(t)
	srv.Namespace(t, ns, nil)
	admin := srv.Clientset(t)
	for _, d := range []*appsv1.Deployment{deployment(ns, "shop", 3), deployment(ns, "shop-canary", 2)} {
		if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cs := deployerClient(t, srv, ns)
	conf.Type, conf.Namespace, conf.Stable, conf.Canary = policy.WorkloadKubernetes, ns, "shop", "shop-canary"
	if conf.ProgressDeadline == 0 {
		conf.ProgressDeadline = time.Minute
	}
	w, err := kube.New(conf, cs, kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w, controller{t: t, cs: admin, ns: ns}
}

func artifact(digest string) string { return repo + "@" + digest }

func TestDeployByDigest(t *testing.T) {
	w, c := setup(t, "deploy-by-digest", policy.Workload{})
	ctx := t.Context()
	before := c.get("shop-canary")
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(digest1)); err != nil {
		t.Fatal(err)
	}
	d := c.get("shop-canary")
	if got := d.Spec.Template.Spec.Containers[0].Image; got != artifact(digest1) {
		t.Fatalf("canary image %q", got)
	}
	if got := d.Spec.Template.Spec.Containers[1].Image; got != "registry.example.com/envoy:1.30" {
		t.Fatalf("the sidecar was changed: %q", got)
	}
	if d.Generation != before.Generation+1 {
		t.Fatalf("generation %d after one image change from %d", d.Generation, before.Generation)
	}
	if c.get("shop").Spec.Template.Spec.Containers[0].Image != repo+":1.0" {
		t.Fatal("the stable Deployment changed with the canary")
	}
	// Idempotent: the same image again is not a new generation.
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(digest1)); err != nil {
		t.Fatal(err)
	}
	if g := c.get("shop-canary").Generation; g != d.Generation {
		t.Fatalf("deploying the same digest again made generation %d", g)
	}
	// A purl, as verdicts carry it, names the same image.
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, "pkg:oci/shop@"+strings.ReplaceAll(digest1, ":", "%3A")+"?repository_url="+repo); err != nil {
		t.Fatal(err)
	}
	if g := c.get("shop-canary").Generation; g != d.Generation {
		t.Fatalf("the purl of the same digest made generation %d", g)
	}
	// Tags are refused before anything is sent.
	for _, bad := range []string{repo + ":2.0", repo + ":2.0@" + digest2, repo + "@sha256:abc", "pkg:oci/shop@sha256%3Aabc?repository_url=" + repo} {
		err := w.Deploy(ctx, shop, rollout.SlotCanary, bad)
		if err == nil {
			t.Errorf("%s was deployed", bad)
		}
		if strings.Contains(bad, ":2.0") && !errors.Is(err, workload.ErrNotDigest) {
			t.Errorf("%s: %v, want ErrNotDigest", bad, err)
		}
	}
	if got := c.get("shop-canary").Spec.Template.Spec.Containers[0].Image; got != artifact(digest1) {
		t.Fatalf("a refused artifact changed the image to %q", got)
	}
}

// Availability is read as the controller reports it: the generation
// observed, every replica updated and available, no old ones left.
func TestProgress(t *testing.T) {
	w, c := setup(t, "progress", policy.Workload{})
	ctx := t.Context()
	since := time.Now()
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(digest1)); err != nil {
		t.Fatal(err)
	}
	progress := func() rollout.Progress {
		t.Helper()
		p, err := w.Progress(ctx, shop, rollout.SlotCanary, artifact(digest1), since)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, step := range []struct {
		observed           bool
		updated, available int32
		want               string // waiting text; "" for available
	}{
		{false, 0, 0, "not observed yet"},
		{true, 1, 0, "1 of 2 replicas updated"},
		{true, 2, 1, "1 of 2 updated replicas available"},
		{true, 2, 2, ""},
	} {
		c.status("shop-canary", step.observed, step.updated, step.available, "ReplicaSetUpdated")
		p := progress()
		switch {
		case step.want == "" && !p.Available:
			t.Fatalf("all replicas available, progress %+v", p)
		case step.want != "" && (p.Available || p.Failed != "" || !strings.Contains(p.Waiting, step.want)):
			t.Fatalf("%+v: progress %+v, want waiting %q", step, p, step.want)
		}
	}
	// Another digest is not what the Deployment serves.
	p, err := w.Progress(ctx, shop, rollout.SlotCanary, artifact(digest2), since)
	if err != nil || p.Available || !strings.Contains(p.Waiting, "not "+artifact(digest2)) {
		t.Fatalf("progress for a digest not deployed: %+v %v", p, err)
	}
}

// A Deployment past its progress deadline fails the wait, and so does the
// policy's own deadline when the controller says nothing.
func TestProgressDeadline(t *testing.T) {
	w, c := setup(t, "deadline", policy.Workload{ProgressDeadline: time.Second})
	ctx := t.Context()
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(digest1)); err != nil {
		t.Fatal(err)
	}
	c.status("shop-canary", true, 1, 0, "ProgressDeadlineExceeded")
	p, err := w.Progress(ctx, shop, rollout.SlotCanary, artifact(digest1), time.Now())
	if err != nil || !strings.Contains(p.Failed, "has timed out progressing") {
		t.Fatalf("ProgressDeadlineExceeded: %+v %v", p, err)
	}
	c.status("shop-canary", true, 1, 0, "ReplicaSetUpdated")
	p, err = w.Progress(ctx, shop, rollout.SlotCanary, artifact(digest1), time.Now())
	if err != nil || p.Failed != "" || p.Available {
		t.Fatalf("within the deadline: %+v %v", p, err)
	}
	p, err = w.Progress(ctx, shop, rollout.SlotCanary, artifact(digest1), time.Now().Add(-2*time.Second))
	if err != nil || !strings.Contains(p.Failed, "not available within the progress deadline: 1 of 2 replicas updated") {
		t.Fatalf("past the policy's deadline: %+v %v", p, err)
	}
}

// ScaleDown keeps the replica count, and the next deploy gives it back.
func TestScaleDownAndBack(t *testing.T) {
	w, c := setup(t, "scale-down", policy.Workload{})
	ctx := t.Context()
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(digest1)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second changes nothing
		if err := w.ScaleDown(ctx, shop, rollout.SlotCanary); err != nil {
			t.Fatal(err)
		}
	}
	d := c.get("shop-canary")
	if *d.Spec.Replicas != 0 || d.Annotations[kube.ReplicasAnnotation] != "2" {
		t.Fatalf("after scale-down: replicas %d, annotations %v", *d.Spec.Replicas, d.Annotations)
	}
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(digest2)); err != nil {
		t.Fatal(err)
	}
	d = c.get("shop-canary")
	if *d.Spec.Replicas != 2 || d.Annotations[kube.ReplicasAnnotation] != "" || d.Spec.Template.Spec.Containers[0].Image != artifact(digest2) {
		t.Fatalf("after the next deploy: replicas %d, annotations %v, image %s", *d.Spec.Replicas, d.Annotations, d.Spec.Template.Spec.Containers[0].Image)
	}
}

// The deployer's ServiceAccount, bound to the chart's Role, may get and
// patch Deployments in the application's namespace and nothing more: the
// real apiserver refuses the rest.
func TestRBAC(t *testing.T) {
	srv := kubetest.Shared(t)
	ns := "rbac"
	srv.Namespace(t, ns, nil)
	srv.Namespace(t, "elsewhere", nil)
	admin := srv.Clientset(t)
	for _, n := range []string{ns, "elsewhere"} {
		if _, err := admin.AppsV1().Deployments(n).Create(t.Context(), deployment(n, "shop-canary", 1), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cs := deployerClient(t, srv, ns)
	w, err := kube.New(policy.Workload{Namespace: ns, Stable: "shop", Canary: "shop-canary", ProgressDeadline: time.Minute}, cs, kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Deploy(t.Context(), shop, rollout.SlotCanary, artifact(digest1)); err != nil {
		t.Fatalf("the Role does not let the workload do its job: %v", err)
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want forbidden", what, err)
		}
	}
	_, err = cs.AppsV1().Deployments(ns).UpdateStatus(t.Context(), deployment(ns, "shop-canary", 1), metav1.UpdateOptions{})
	forbidden("update a Deployment's status", err)
	forbidden("delete a Deployment", cs.AppsV1().Deployments(ns).Delete(t.Context(), "shop-canary", metav1.DeleteOptions{}))
	_, err = cs.AppsV1().Deployments(ns).Create(t.Context(), deployment(ns, "other", 1), metav1.CreateOptions{})
	forbidden("create a Deployment", err)
	_, err = cs.AppsV1().Deployments(ns).Watch(t.Context(), metav1.ListOptions{})
	forbidden("watch Deployments", err)
	other, err := kube.New(policy.Workload{Namespace: "elsewhere", Stable: "shop", Canary: "shop-canary", ProgressDeadline: time.Minute}, cs, kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forbidden("deploy in a namespace the Role is not in", unwrapStatus(other.Deploy(t.Context(), shop, rollout.SlotCanary, artifact(digest1))))
}

// deployerClient is a client with the deployer's ServiceAccount token and
// the chart's Role in ns.
func deployerClient(t *testing.T, srv *kubetest.Server, ns string) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(clustertest.DeployerConfig(t, srv, ns))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// unwrapStatus finds the API status error in a wrapped one.
func unwrapStatus(err error) error {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.(error)
	}
	return err
}

// A workload whose patches race with another writer's gets a conflict,
// never overwrites blindly; the deployer's pass retries from a fresh read.
func TestDeployConflict(t *testing.T) {
	w, c := setup(t, "conflict", policy.Workload{})
	hits := 0
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		d := c.get("shop-canary")
		d.Annotations = map[string]string{"touched": fmt.Sprint(time.Now().UnixNano())}
		// Another writer changes the Deployment while the workload deploys.
		done := make(chan error, 1)
		go func() {
			_, err := c.cs.AppsV1().Deployments(c.ns).Update(ctx, d, metav1.UpdateOptions{})
			done <- err
		}()
		err := w.Deploy(ctx, shop, rollout.SlotCanary, artifact(fmt.Sprintf("sha256:%064x", time.Now().UnixNano())))
		if uerr := <-done; uerr != nil && !apierrors.IsConflict(uerr) {
			t.Fatal(uerr)
		}
		if err != nil && !apierrors.IsConflict(unwrapStatus(err)) {
			t.Fatalf("deploy: %v", err)
		}
		if err != nil {
			hits++
		}
		if hits == 0 {
			return errors.New("no conflict seen yet")
		}
		return nil
	})
}

// A stage the workload runs is its own Deployment, in the workload's
// namespace or another: the candidate's image goes there and nowhere else,
// and its progress is read from it. A stage it does not run is refused
// without a request.
func TestStageSlot(t *testing.T) {
	const ns = "stage-slot"
	w, c := setup(t, ns, policy.Workload{Stages: map[string]string{"staging": "shop-staging", "qa": "stage-slot-qa/shop"}})
	srv := kubetest.Shared(t)
	admin := srv.Clientset(t)
	srv.Namespace(t, "stage-slot-qa", nil)
	for _, d := range []*appsv1.Deployment{deployment(ns, "shop-staging", 1), deployment("stage-slot-qa", "shop", 1)} {
		if _, err := admin.AppsV1().Deployments(d.Namespace).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !w.RunsStage(shop, "staging") || !w.RunsStage(shop, "qa") || w.RunsStage(shop, "preprod") {
		t.Fatal("RunsStage does not follow workload.stages")
	}
	ctx := t.Context()
	since := time.Now()
	staging := rollout.StageSlot("staging")
	if err := w.Deploy(ctx, shop, staging, artifact(digest1)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"shop-staging": artifact(digest1), "shop-canary": repo + ":1.0", "shop": repo + ":1.0"} {
		if got := c.get(name).Spec.Template.Spec.Containers[0].Image; got != want {
			t.Fatalf("%s runs %s, want %s", name, got, want)
		}
	}
	if p, err := w.Progress(ctx, shop, staging, artifact(digest1), since); err != nil || p.Available || p.Waiting == "" {
		t.Fatalf("staging before its controller saw it: %+v %v", p, err)
	}
	c.status("shop-staging", true, 1, 1, "NewReplicaSetAvailable")
	if p, err := w.Progress(ctx, shop, staging, artifact(digest1), since); err != nil || !p.Available {
		t.Fatalf("staging serving the candidate: %+v %v", p, err)
	}
	if err := w.Deploy(ctx, shop, rollout.StageSlot("preprod"), artifact(digest1)); err == nil || !strings.Contains(err.Error(), "no stage:preprod slot") {
		t.Fatalf("deploy to a stage the workload does not run: %v", err)
	}

	// Another namespace: the deployer's Role must reach it (the chart's
	// deployer.rbac.namespaces); with this test's Role it does not.
	if err := unwrapStatus(w.Deploy(ctx, shop, rollout.StageSlot("qa"), artifact(digest2))); !apierrors.IsForbidden(err) {
		t.Fatalf("deploy to a namespace outside the deployer's Role: %v", err)
	}
	conf := policy.Workload{Type: policy.WorkloadKubernetes, Namespace: ns, Stable: "shop", Canary: "shop-canary",
		Stages: map[string]string{"qa": "stage-slot-qa/shop"}, ProgressDeadline: time.Minute}
	wide, err := kube.New(conf, admin, kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wide.Deploy(ctx, shop, rollout.StageSlot("qa"), artifact(digest2)); err != nil {
		t.Fatal(err)
	}
	qa, err := admin.AppsV1().Deployments("stage-slot-qa").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || qa.Spec.Template.Spec.Containers[0].Image != artifact(digest2) {
		t.Fatalf("qa Deployment %v: %v", qa.Spec.Template.Spec.Containers[0].Image, err)
	}
}
