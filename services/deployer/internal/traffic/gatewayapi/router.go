// Package gatewayapi routes an application's traffic with a Kubernetes
// Gateway API HTTPRoute (gateway.networking.k8s.io/v1): it sets the weights
// of the stable and canary backendRefs, and the cluster's gateway splits
// the traffic. It talks to the API server through client-go's dynamic
// client, so it needs no generated Gateway API types.
//
// Every change is a read-modify-write under optimistic concurrency: the
// patch carries the resourceVersion that was read, and a conflict (someone
// else changed the route in between) is retried from a fresh read, a
// bounded number of times.
package gatewayapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/kubeconfig"
	"github.com/rampartci/rampart/services/deployer/internal/traffic"
)

// HTTPRoutes is the resource the router updates.
var HTTPRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// FieldManager names the deployer in the route's managed fields.
const FieldManager = kubeconfig.UserAgent

// Defaults for Options.
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = 20 * time.Millisecond
)

// Options are a Gateway API router's optional settings.
type Options struct {
	// Logger receives weight changes and conflicts (default: discard).
	Logger *slog.Logger
	// MaxAttempts bounds the read-modify-write attempts of one SetWeight
	// when updates conflict (default DefaultMaxAttempts).
	MaxAttempts int
	// Backoff is the wait after the first conflict, doubled after each
	// further one (default DefaultBackoff).
	Backoff time.Duration
}

// Router sets one application's canary weight on its HTTPRoute.
type Router struct {
	conf   policy.GatewayAPIRouter
	routes dynamic.ResourceInterface
	log    *slog.Logger
	opts   Options

	// mu serialises this process's read-modify-writes of the route;
	// other writers are handled by optimistic concurrency.
	mu     sync.Mutex
	weight atomic.Int64
}

var _ traffic.Router = (*Router)(nil)

// New returns the router for the HTTPRoute conf.Route in conf.Namespace,
// using client (NewClient builds one from conf.Kubeconfig). It makes no
// request until Start or SetWeight.
func New(conf policy.GatewayAPIRouter, client dynamic.Interface, opts Options) (*Router, error) {
	if conf.Namespace == "" || conf.Route == "" || conf.StableBackend == "" || conf.CanaryBackend == "" {
		return nil, fmt.Errorf("gatewayapi router: namespace, route, stableBackend and canaryBackend are required")
	}
	if conf.StableBackend == conf.CanaryBackend {
		return nil, fmt.Errorf("gatewayapi router: stableBackend and canaryBackend are both %q", conf.StableBackend)
	}
	if client == nil {
		return nil, fmt.Errorf("gatewayapi router: no Kubernetes client")
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{
		conf:   conf,
		routes: client.Resource(HTTPRoutes).Namespace(conf.Namespace),
		log:    log.With("router", policy.RouterGatewayAPI, "httproute", conf.Namespace+"/"+conf.Route),
		opts:   opts,
	}, nil
}

// NewClient returns a dynamic client for the cluster of the kubeconfig file
// at path, or for the cluster the deployer runs in when path is "".
func NewClient(path string) (dynamic.Interface, error) {
	cfg, err := kubeconfig.Load(path)
	if err != nil {
		return nil, err
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return c, nil
}

// Start reads the route's current canary weight, so Weight is right after
// a restart, and checks that the route has both backends.
func (r *Router) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	route, err := r.routes.Get(ctx, r.conf.Route, metav1.GetOptions{})
	if err != nil {
		return r.errorf("read HTTPRoute: %w", err)
	}
	w, err := canaryWeight(route, r.conf.StableBackend, r.conf.CanaryBackend)
	if err != nil {
		return r.errorf("read canary weight: %w", err)
	}
	r.weight.Store(int64(w))
	r.log.Info("HTTPRoute read", "weight", w)
	return nil
}

// Shutdown has nothing to release; it is there so every router has the
// same lifecycle.
func (r *Router) Shutdown(context.Context) error { return nil }

// Weight is the canary percent last set, or read by Start.
func (r *Router) Weight() int { return int(r.weight.Load()) }

// SetWeight sets the canary backend's weight to canaryPercent and the
// stable backend's to 100-canaryPercent in every rule of the route that
// lists both. It retries update conflicts up to Options.MaxAttempts times
// in all, waiting between attempts within ctx; other errors are returned
// at once. A route whose weights already match is not updated.
func (r *Router) SetWeight(ctx context.Context, canaryPercent int) error {
	if err := traffic.ValidateWeight(canaryPercent); err != nil {
		return r.errorf("%w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	backoff := r.opts.Backoff
	for attempt := 1; ; attempt++ {
		changed, err := r.trySetWeight(ctx, canaryPercent)
		if err == nil {
			from := r.weight.Swap(int64(canaryPercent))
			if changed {
				r.log.Info("canary weight set", "from", from, "to", canaryPercent, "attempts", attempt)
			}
			return nil
		}
		if !apierrors.IsConflict(err) {
			return r.errorf("set canary weight %d: %w", canaryPercent, err)
		}
		if attempt >= r.opts.MaxAttempts {
			return r.errorf("set canary weight %d: the route kept changing, gave up after %d attempts: %w", canaryPercent, attempt, err)
		}
		r.log.Debug("HTTPRoute changed under us; retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return r.errorf("set canary weight %d: stopped after %d attempts: %w", canaryPercent, attempt, context.Cause(ctx))
		case <-t.C:
		}
		backoff *= 2
	}
}

// trySetWeight is one read-modify-write: a JSON merge patch of the
// route's rules that carries the resourceVersion of the read, so the API
// server refuses it with a conflict if the route changed in between. A
// patch, not an update: the deployer's Role grants get and patch only.
func (r *Router) trySetWeight(ctx context.Context, canaryPercent int) (changed bool, err error) {
	route, err := r.routes.Get(ctx, r.conf.Route, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read HTTPRoute: %w", err)
	}
	changed, err = setWeights(route, r.conf.StableBackend, r.conf.CanaryBackend, canaryPercent)
	if err != nil || !changed {
		return false, err
	}
	rules, _, _ := unstructured.NestedFieldNoCopy(route.Object, "spec", "rules")
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": route.GetResourceVersion()},
		"spec":     map[string]any{"rules": rules},
	})
	if err != nil {
		return false, err
	}
	if _, err := r.routes.Patch(ctx, r.conf.Route, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return false, fmt.Errorf("patch HTTPRoute at resourceVersion %s: %w", route.GetResourceVersion(), err)
	}
	return true, nil
}

func (r *Router) errorf(format string, args ...any) error {
	return fmt.Errorf("gatewayapi router for HTTPRoute %s/%s: "+format, append([]any{r.conf.Namespace, r.conf.Route}, args...)...)
}
