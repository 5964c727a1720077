// Package kube is the deployer's Kubernetes workload: it runs a release by
// setting the image of the application's Deployments to the approved
// digest through the API server, reads their status to know when they
// serve it, and scales the canary down after a rollback.
//
// It needs only get and patch on Deployments in the application's
// namespace (the chart's Role): every change is a strategic merge patch of
// the fields it owns, and it polls with get rather than watching.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/kubeconfig"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
	"github.com/rampartci/rampart/services/deployer/internal/workload"
)

// FieldManager names the deployer in the Deployments' managed fields.
const FieldManager = kubeconfig.UserAgent

// ReplicasAnnotation keeps a scaled-down canary's replica count, to give it
// back on its next deploy.
const ReplicasAnnotation = "rampart.dev/replicas"

// Options are a workload's optional settings.
type Options struct {
	// Logger receives what the workload changes (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Workload releases one application's Deployments.
type Workload struct {
	conf   policy.Workload
	client kubernetes.Interface
	log    *slog.Logger
	now    func() time.Time
}

var (
	_ rollout.Workload = (*Workload)(nil)
	_ rollout.Awaiter  = (*Workload)(nil)
	_ rollout.Scaler   = (*Workload)(nil)
)

// New returns the workload of the Deployments conf names, reached through
// client (NewClient builds one from conf.Kubeconfig).
func New(conf policy.Workload, client kubernetes.Interface, opts Options) (*Workload, error) {
	if conf.Namespace == "" || conf.Stable == "" || conf.Canary == "" {
		return nil, fmt.Errorf("kubernetes workload: namespace, stable and canary are required")
	}
	if client == nil {
		return nil, fmt.Errorf("kubernetes workload: no Kubernetes client")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Workload{conf: conf, client: client, log: opts.Logger.With("workload", policy.WorkloadKubernetes, "namespace", conf.Namespace), now: opts.Now}, nil
}

// NewClient returns a client for the cluster of the kubeconfig file at
// path, or for the cluster the deployer runs in when path is "".
func NewClient(path string) (kubernetes.Interface, error) {
	cfg, err := kubeconfig.Load(path)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// Deploy sets the image of slot's Deployment to artifact's digest; a
// scaled-down Deployment gets its replicas back. Deploying the image it
// runs already changes nothing.
func (w *Workload) Deploy(ctx context.Context, app policy.App, slot rollout.Slot, artifact string) error {
	image, err := workload.Image(artifact)
	if err != nil {
		return err
	}
	d, c, err := w.get(ctx, app, slot)
	if err != nil {
		return err
	}
	container := d.Spec.Template.Spec.Containers[c]
	patch := map[string]any{}
	if container.Image != image {
		patch["spec"] = map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": container.Name, "image": image}}}}}
	}
	if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
		n := int64(1)
		if s, ok := d.Annotations[ReplicasAnnotation]; ok {
			if v, err := strconv.ParseInt(s, 10, 32); err == nil && v > 0 {
				n = v
			}
		}
		spec, _ := patch["spec"].(map[string]any)
		if spec == nil {
			spec = map[string]any{}
			patch["spec"] = spec
		}
		spec["replicas"] = n
		patch["metadata"] = map[string]any{"annotations": map[string]any{ReplicasAnnotation: nil}}
	}
	if len(patch) == 0 {
		return nil
	}
	if err := w.patch(ctx, d, patch); err != nil {
		return err
	}
	w.log.Info("image set", "deployment", d.Name, "container", container.Name, "image", image, "was", container.Image)
	return nil
}

// Progress says whether slot's Deployment serves artifact with all its
// replicas available. The wait fails at the Deployment's own progress
// deadline (ProgressDeadlineExceeded) or the policy's, counted from since.
func (w *Workload) Progress(ctx context.Context, app policy.App, slot rollout.Slot, artifact string, since time.Time) (rollout.Progress, error) {
	image, err := workload.Image(artifact)
	if err != nil {
		return rollout.Progress{}, err
	}
	d, c, err := w.get(ctx, app, slot)
	if err != nil {
		return rollout.Progress{}, err
	}
	return workload.Status(d, c, image, w.now(), since.Add(w.conf.ProgressDeadline)), nil
}

// RunsStage implements rollout.StageRunner: the stages workload.stages
// names.
func (w *Workload) RunsStage(_ policy.App, stage string) bool {
	_, _, ok := w.conf.StageDeployment(stage)
	return ok
}

// ScaleDown sets slot's Deployment to 0 replicas, keeping its count in an
// annotation for the next deploy.
func (w *Workload) ScaleDown(ctx context.Context, app policy.App, slot rollout.Slot) error {
	d, _, err := w.get(ctx, app, slot)
	if err != nil {
		return err
	}
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	if n == 0 {
		return nil
	}
	patch := map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{ReplicasAnnotation: strconv.Itoa(int(n))}},
		"spec":     map[string]any{"replicas": 0},
	}
	if err := w.patch(ctx, d, patch); err != nil {
		return err
	}
	w.log.Info("scaled down", "deployment", d.Name, "replicas", n)
	return nil
}

// get reads slot's Deployment and finds the application's container in it.
func (w *Workload) get(ctx context.Context, app policy.App, slot rollout.Slot) (*appsv1.Deployment, int, error) {
	ns, name, err := workload.Deployment(&w.conf, slot)
	if err != nil {
		return nil, 0, err
	}
	d, err := w.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("read Deployment %s/%s: %w", ns, name, err)
	}
	c, err := workload.Container(&d.Spec.Template.Spec, w.conf.Container, app.Image)
	if err != nil {
		return nil, 0, fmt.Errorf("Deployment %s/%s: %w", ns, name, err)
	}
	return d, c, nil
}

// patch applies a strategic merge patch to d, guarded by the
// resourceVersion it was read at: a Deployment changed in between is a
// conflict, and the pass is retried from a fresh read.
func (w *Workload) patch(ctx context.Context, d *appsv1.Deployment, patch map[string]any) error {
	meta, _ := patch["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		patch["metadata"] = meta
	}
	meta["resourceVersion"] = d.ResourceVersion
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = w.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("patch Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}
