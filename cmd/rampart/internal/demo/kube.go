package demo

import (
	"fmt"
	"time"
)

// Kube is a Kubernetes namespace the demo application is released into:
// the deployer's kubernetes workload sets the image of its two
// Deployments, its Gateway API router the weights of its HTTPRoute, and
// the watcher judges the canary from Prometheus (alerts come through the
// Alertmanager hook).
type Kube struct {
	// Kubeconfig is the file the deployer reaches the cluster with.
	Kubeconfig string
	Namespace  string
	// Route is the HTTPRoute; StableBackend and CanaryBackend its
	// Services.
	Route, StableBackend, CanaryBackend string
	// Stable and Canary are the Deployments.
	Stable, Canary string
	// ScaleDownDelay is how long a rolled-back canary keeps its pods.
	ScaleDownDelay time.Duration
	// Prometheus is the URL of the Prometheus the watcher queries.
	Prometheus string
}

// policy is the demo's rampart.yaml for the cluster.
func (k *Kube) policy(registry string, cfg Config) string {
	return fmt.Sprintf(`version: 1
apps:
  - name: %s
    image: %s/demo/shop
    environment: demo
    router:
      type: gatewayapi
      gatewayapi: {namespace: %s, route: %s, stableBackend: %s, canaryBackend: %s, kubeconfig: %q}
    workload:
      type: kubernetes
      namespace: %s
      stable: %s
      canary: %s
      kubeconfig: %q
      scaleDownDelay: %s
    canary: {steps: [5, 25, 50, 100], pause: %s}
    analysis:
      provider: prometheus
      prometheus: {url: %q}
      interval: %s
`, App, registry, k.Namespace, k.Route, k.StableBackend, k.CanaryBackend, k.Kubeconfig,
		k.Namespace, k.Stable, k.Canary, k.Kubeconfig, k.ScaleDownDelay, cfg.Pause, k.Prometheus, cfg.Interval)
}
