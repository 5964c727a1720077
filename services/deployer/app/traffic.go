package app

// The traffic router of each application, chosen by its policy
// (policy.App.Router): the local reverse proxy or a Gateway API HTTPRoute.
// This is the one place that knows every implementation.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/traffic"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/gatewayapi"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

// router is an application's traffic router with its lifecycle: the rollout
// moves the weight, the app starts it before and shuts it down after.
//
//   - local: Start listens on policy.LocalRouter.Listen; Shutdown drains
//     and closes the listener.
//   - gatewayapi: Start reads the route's current weight and checks it has
//     both backends; Shutdown does nothing.
type router interface {
	traffic.Router
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

var (
	_ router = (*local.Router)(nil)
	_ router = (*gatewayapi.Router)(nil)
)

// errUnknownRouter is returned for a router type this deployer does not
// have.
var errUnknownRouter = errors.New("unknown router type")

// routerOptions are what the routers may need from their host.
type routerOptions struct {
	// Logger is given to the router (default: discard).
	Logger *slog.Logger
	// Registerer is the host's registry: the local router registers its
	// metrics there too (it always serves them on its own /-/metrics).
	Registerer prometheus.Registerer
	// Kubernetes returns the dynamic client for a gatewayapi router's
	// kubeconfig path ("" means in-cluster). Default gatewayapi.NewClient;
	// tests give a fake, and a host routing many applications can share
	// one client.
	Kubernetes func(kubeconfig string) (dynamic.Interface, error)
}

// newRouter returns app's router, not yet started. Its type is app.Router.Type:
// a *local.Router or a *gatewayapi.Router, for callers that need more than
// the weight (the local router's Addr, SetUpstreams).
func newRouter(app policy.App, opts routerOptions) (router, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("app", app.Name)
	switch app.Router.Type {
	case policy.RouterLocal, "":
		if app.Router.Local == nil {
			return nil, fmt.Errorf("router for %s: type local needs router.local", app.Name)
		}
		return local.New(app.Name, *app.Router.Local, local.Options{Logger: log, Registerer: opts.Registerer})
	case policy.RouterGatewayAPI:
		conf := app.Router.GatewayAPI
		if conf == nil {
			return nil, fmt.Errorf("router for %s: type gatewayapi needs router.gatewayapi", app.Name)
		}
		newClient := opts.Kubernetes
		if newClient == nil {
			newClient = gatewayapi.NewClient
		}
		client, err := newClient(conf.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("router for %s: %w", app.Name, err)
		}
		return gatewayapi.New(*conf, client, gatewayapi.Options{Logger: log})
	default:
		return nil, fmt.Errorf("router for %s: %w %q (want %s or %s)", app.Name, errUnknownRouter, app.Router.Type, policy.RouterLocal, policy.RouterGatewayAPI)
	}
}
