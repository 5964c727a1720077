// Package workload is what the deployer's two workloads share: an
// artifact as the image reference a Deployment runs (by digest, never a
// tag), the container that runs the application, and whether a Deployment
// serves an image with all its replicas, read from its status the way
// `kubectl rollout status` reads it.
//
// The workloads themselves are kube (the deployer patches the
// Deployments) and git (the deployer commits the image to a repository a
// GitOps controller applies, and reads the Deployments to see it served).
package workload

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
)

// ErrNotDigest is returned for an artifact that names its image by tag:
// a tag can be moved, and a release must run exactly what was scanned.
var ErrNotDigest = errors.New("image is not pinned by digest")

var digestRef = regexp.MustCompile(`^([a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+)@(sha256:[0-9a-f]{64})$`)

// Image is the reference a container runs for artifact: repository@sha256:…
// The artifact is a pkg:oci purl (what verdicts carry) or such a
// reference; a tag, with or without a digest, is refused.
func Image(artifact string) (string, error) {
	ref := artifact
	if strings.HasPrefix(artifact, "pkg:oci/") {
		o, err := events.ParseOCI(artifact)
		if err != nil {
			return "", err
		}
		ref = o.Ref()
	}
	if !digestRef.MatchString(ref) {
		return "", fmt.Errorf("%q: %w (want registry/repository@sha256:<64 hex>)", artifact, ErrNotDigest)
	}
	return ref, nil
}

// Deployment is the namespace and name of slot's Deployment in w; an error
// for a stage w does not run.
func Deployment(w *policy.Workload, slot rollout.Slot) (namespace, name string, err error) {
	switch slot {
	case rollout.SlotStable:
		return w.Namespace, w.Stable, nil
	case rollout.SlotCanary:
		return w.Namespace, w.Canary, nil
	}
	stage, _ := rollout.StageOf(slot)
	if ns, name, ok := w.StageDeployment(stage); ok {
		return ns, name, nil
	}
	return "", "", fmt.Errorf("the workload runs no %s slot (no workload.stages entry)", slot)
}

// Container is the index of the container that runs the application in
// spec: the one named name, else the only one, else the one whose image is
// from repository.
func Container(spec *corev1.PodSpec, name, repository string) (int, error) {
	if name != "" {
		for i, c := range spec.Containers {
			if c.Name == name {
				return i, nil
			}
		}
		return -1, fmt.Errorf("no container %q", name)
	}
	if len(spec.Containers) == 1 {
		return 0, nil
	}
	found := -1
	for i, c := range spec.Containers {
		repo, _, _ := strings.Cut(c.Image, "@")
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		if repo == repository {
			if found >= 0 {
				return -1, fmt.Errorf("containers %q and %q both run %s: name one in workload.container", spec.Containers[found].Name, c.Name, repository)
			}
			found = i
		}
	}
	if found < 0 {
		return -1, fmt.Errorf("%d containers and none runs %s: name one in workload.container", len(spec.Containers), repository)
	}
	return found, nil
}

// Status says whether d serves image with all its replicas available, as
// the Deployment controller reports it. container is the application's
// container; deadline is when the wait gives up (the Deployment's own
// progress deadline ends it sooner, with ProgressDeadlineExceeded).
func Status(d *appsv1.Deployment, container int, image string, now, deadline time.Time) rollout.Progress {
	failed := func(format string, args ...any) rollout.Progress {
		return rollout.Progress{Failed: fmt.Sprintf("Deployment %s/%s: ", d.Namespace, d.Name) + fmt.Sprintf(format, args...)}
	}
	waiting := func(format string, args ...any) rollout.Progress {
		if !now.Before(deadline) {
			return failed("not available within the progress deadline: "+format, args...)
		}
		return rollout.Progress{Waiting: fmt.Sprintf(format, args...)}
	}
	if got := d.Spec.Template.Spec.Containers[container].Image; got != image {
		return waiting("runs %s, not %s yet", got, image)
	}
	if d.Generation > d.Status.ObservedGeneration {
		return waiting("generation %d not observed yet (observed %d)", d.Generation, d.Status.ObservedGeneration)
	}
	// The controller's verdict on this generation (an older one's
	// condition is replaced when it observes a new one).
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return failed("%s", c.Message)
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	switch {
	case s.UpdatedReplicas < want:
		return waiting("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return waiting("%d old replicas pending termination", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < s.UpdatedReplicas:
		return waiting("%d of %d updated replicas available", s.AvailableReplicas, s.UpdatedReplicas)
	}
	return rollout.Progress{Available: true}
}
