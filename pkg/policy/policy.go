// Package policy is rampart.yaml: the applications Rampart delivers, how each
// is routed, stepped, analysed and paged for. Loading validates everything and
// names each problem by file, line and field path; a Store keeps the last
// valid policy when a reload fails.
package policy

import (
	"time"
)

// Policy is a parsed, validated rampart.yaml.
type Policy struct {
	Version int   `yaml:"version"`
	Apps    []App `yaml:"apps"`

	// File is where the policy was read from, for messages.
	File string `yaml:"-"`
	// Digest is "sha256:<hex>" of the file's bytes: the policy version that
	// events and reports cite.
	Digest string `yaml:"-"`
}

// App is one application and how it is delivered.
type App struct {
	// Name is the application; it is a NATS subject token, so [a-z0-9-].
	Name string `yaml:"name"`
	// Image is the image repository, e.g. "registry.example.com/shop"; an
	// artifact pushed to it belongs to this application.
	Image       string   `yaml:"image"`
	Environment string   `yaml:"environment"`
	Router      Router   `yaml:"router"`
	Canary      Canary   `yaml:"canary"`
	Analysis    Analysis `yaml:"analysis"`
	Notify      Notify   `yaml:"notify"`
	// Workload makes releases run; nil: something else runs them.
	Workload *Workload `yaml:"workload"`
	// Stages are the application's road to production, in order: each
	// pre-production stage (staging) is deployed to and checked before the
	// candidate goes on; production, the canary above, is last. Empty:
	// straight to the production canary. See stage.go.
	Stages []Stage `yaml:"stages"`
}

// Router types.
const (
	RouterLocal      = "local"
	RouterGatewayAPI = "gatewayapi"
)

// Router says how traffic is split between the stable and canary versions.
type Router struct {
	Type       string            `yaml:"type"`
	Local      *LocalRouter      `yaml:"local"`
	GatewayAPI *GatewayAPIRouter `yaml:"gatewayapi"`
}

// LocalRouter is the deployer's own weighted reverse proxy.
type LocalRouter struct {
	// Listen is the proxy's address, e.g. "127.0.0.1:8081".
	Listen string `yaml:"listen"`
	// Stable and Canary are the upstream base URLs of the two versions.
	Stable string `yaml:"stable"`
	Canary string `yaml:"canary"`
}

// GatewayAPIRouter sets backend weights on a Kubernetes Gateway API HTTPRoute.
type GatewayAPIRouter struct {
	Namespace     string `yaml:"namespace"`
	Route         string `yaml:"route"`
	StableBackend string `yaml:"stableBackend"`
	CanaryBackend string `yaml:"canaryBackend"`
	// Kubeconfig is a path; empty means in-cluster configuration.
	Kubeconfig string `yaml:"kubeconfig"`
}

// MetricsURL is where the local router serves its per-version metrics: a
// path under "/-/", which the router keeps for itself and never proxies.
func (l *LocalRouter) MetricsURL() string { return "http://" + l.Listen + RouterMetricsPath }

// The local router's metrics: the contract between the deployer's router and
// the watcher's scrape provider. Labels: app, version ("stable" or
// "canary"), and for requests code (the HTTP status, e.g. "503").
const (
	RouterMetricsPath  = "/-/metrics"
	RouterRequests     = "rampart_router_requests_total"
	RouterLatency      = "rampart_router_request_duration_seconds"
	RouterCanaryWeight = "rampart_router_canary_weight"
	VersionStable      = "stable"
	VersionCanary      = "canary"
)

// Canary is the rollout's traffic steps.
type Canary struct {
	// Steps are canary weights in percent, ascending, ending at 100.
	Steps []int `yaml:"steps"`
	// Pause is how long each step holds before the next.
	Pause time.Duration `yaml:"pause"`
}

// Metrics providers.
const (
	ProviderScrape     = "scrape"
	ProviderPrometheus = "prometheus"
)

// Analysis is how a live canary is judged.
type Analysis struct {
	Provider string        `yaml:"provider"`
	Interval time.Duration `yaml:"interval"`
	// Prometheus is the server queried with PromQL (provider prometheus).
	// Provider scrape reads the local router's metrics (error rate) and each
	// upstream's /metrics (memory) directly.
	Prometheus *Prometheus   `yaml:"prometheus"`
	ErrorRate  ErrorRateRule `yaml:"errorRate"`
	Memory     MemoryRule    `yaml:"memory"`
	SIEM       SIEMRule      `yaml:"siem"`
	Latency    LatencyRule   `yaml:"latency"`
}

// LatencyRule aborts when the canary's mean response time over the step
// exceeds MaxMean, once it has served at least MinRequests requests (default
// errorRate.minRequests). A zero MaxMean turns the rule off.
type LatencyRule struct {
	MaxMean     time.Duration `yaml:"maxMean"`
	MinRequests int           `yaml:"minRequests"`
}

// Prometheus is a Prometheus server's HTTP API.
type Prometheus struct {
	URL string `yaml:"url"`
}

// ErrorRateRule aborts when the canary's HTTP 5xx ratio exceeds Max, once it
// has served at least MinRequests requests in the window.
type ErrorRateRule struct {
	Max         float64 `yaml:"max"`
	MinRequests int     `yaml:"minRequests"`
}

// MemoryRule aborts when canary memory exceeds MaxRatio × stable memory.
type MemoryRule struct {
	MaxRatio float64 `yaml:"maxRatio"`
	// Metric is the gauge of a version's memory in bytes: read from each
	// upstream's /metrics (scrape) or selected by app and version labels
	// (prometheus). Default process_resident_memory_bytes.
	Metric string `yaml:"metric"`
}

// SIEMRule aborts on any SIEM alert for the application.
type SIEMRule struct {
	Enabled bool `yaml:"enabled"`
}

// Notification channels.
const (
	ChannelPagerDuty = "pagerduty"
	ChannelSlack     = "slack"
)

// Notify says who hears about what.
type Notify struct {
	PagerDuty *PagerDuty `yaml:"pagerduty"`
	Slack     *Slack     `yaml:"slack"`
	// ScanBlocked and Released list the channels for blocked scans and
	// completed releases (default: slack). Rollbacks go to every channel.
	ScanBlocked []string `yaml:"scanBlocked"`
	Released    []string `yaml:"released"`
}

// PagerDuty pages through the Events API v2.
type PagerDuty struct {
	RoutingKey Secret `yaml:"routingKey"`
	// Severity of the page: critical, error, warning or info.
	Severity string `yaml:"severity"`
	// URL overrides the Events API endpoint (tests, proxies).
	URL string `yaml:"url"`
}

// Slack posts to an incoming webhook.
type Slack struct {
	Webhook Secret `yaml:"webhook"`
}

// App returns the application named name.
func (p *Policy) App(name string) (App, bool) {
	for _, a := range p.Apps {
		if a.Name == name {
			return a, true
		}
	}
	return App{}, false
}

// AppForImage returns the application whose image repository is repo.
func (p *Policy) AppForImage(repo string) (App, bool) {
	for _, a := range p.Apps {
		if a.Image == repo {
			return a, true
		}
	}
	return App{}, false
}
