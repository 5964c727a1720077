package app

// The workload of each application, chosen by its policy
// (policy.App.Workload): none (the default: the deployer moves traffic and
// something else runs the versions, as in the demo, where the embedding
// program passes Options.Workload), the kubernetes workload (the
// deployer patches the Deployments) or the git workload (it commits the
// image for a GitOps controller to apply). This is the one place that
// knows every implementation.

import (
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
	"github.com/rampartci/rampart/services/deployer/internal/workload/git"
	"github.com/rampartci/rampart/services/deployer/internal/workload/kube"
)

// workloadOptions are what the workloads may need from their host.
type workloadOptions struct {
	Logger *slog.Logger
	// Kubernetes returns the client for a kubeconfig path ("" means
	// in-cluster). Default kube.NewClient; tests give their own.
	Kubernetes func(kubeconfig string) (kubernetes.Interface, error)
}

// newWorkload returns app's workload, nil when the policy names none.
func newWorkload(app policy.App, opts workloadOptions) (rollout.Workload, error) {
	conf := app.Workload
	if conf == nil {
		return nil, nil
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("app", app.Name)
	newClient := opts.Kubernetes
	if newClient == nil {
		newClient = kube.NewClient
	}
	client, err := newClient(conf.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("workload of %s: %w", app.Name, err)
	}
	switch conf.Type {
	case policy.WorkloadKubernetes:
		return kube.New(*conf, client, kube.Options{Logger: log})
	case policy.WorkloadGit:
		return git.New(*conf, client, git.Options{Logger: log})
	default:
		return nil, fmt.Errorf("workload of %s: unknown type %q (want %s or %s)", app.Name, conf.Type, policy.WorkloadKubernetes, policy.WorkloadGit)
	}
}
