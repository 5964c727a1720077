// Package kubeconfig is how the deployer reaches a Kubernetes API server:
// a kubeconfig file named in rampart.yaml, or the ServiceAccount of the pod
// it runs in.
package kubeconfig

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent names the deployer to the API server.
const UserAgent = "rampart-deployer"

// Load returns the client configuration of the kubeconfig file at path,
// or the in-cluster one when path is "".
func Load(path string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if path == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (kubeconfig %q): %w", path, err)
	}
	cfg.UserAgent = UserAgent
	return cfg, nil
}
