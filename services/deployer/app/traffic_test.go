package app

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/fake"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/gatewayapi"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

func TestNewRouterLocal(t *testing.T) {
	app := policy.App{Name: "shop", Router: policy.Router{Type: policy.RouterLocal,
		Local: &policy.LocalRouter{Listen: "127.0.0.1:0", Stable: "http://127.0.0.1:1", Canary: "http://127.0.0.1:2"}}}
	host := prometheus.NewRegistry()
	r, err := newRouter(app, routerOptions{Registerer: host})
	if err != nil {
		t.Fatal(err)
	}
	lr, ok := r.(*local.Router)
	if !ok {
		t.Fatalf("New gave a %T", r)
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + lr.Addr() + local.HealthzPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := r.SetWeight(ctx, 5); err != nil || r.Weight() != 5 {
		t.Fatalf("SetWeight: %v, Weight %d", err, r.Weight())
	}
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if fams, err := host.Gather(); err != nil || len(fams) == 0 {
		t.Fatalf("host registry: %d families, %v", len(fams), err)
	}
}

func TestNewRouterGatewayAPI(t *testing.T) {
	app := policy.App{Name: "shop", Router: policy.Router{Type: policy.RouterGatewayAPI,
		GatewayAPI: &policy.GatewayAPIRouter{Namespace: "shop", Route: "shop", StableBackend: "s", CanaryBackend: "c", Kubeconfig: "/etc/kube"}}}
	var asked string
	client := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gatewayapi.HTTPRoutes: "HTTPRouteList"})
	r, err := newRouter(app, routerOptions{Kubernetes: func(kubeconfig string) (dynamic.Interface, error) {
		asked = kubeconfig
		return client, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*gatewayapi.Router); !ok || asked != "/etc/kube" {
		t.Fatalf("New gave a %T for kubeconfig %q", r, asked)
	}

	boom := errors.New("no cluster")
	_, err = newRouter(app, routerOptions{Kubernetes: func(string) (dynamic.Interface, error) { return nil, boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("client error: %v", err)
	}
}

func TestNewRouterRefusesIncompletePolicies(t *testing.T) {
	for name, app := range map[string]policy.App{
		"unknown type":      {Name: "shop", Router: policy.Router{Type: "istio"}},
		"local, no conf":    {Name: "shop", Router: policy.Router{Type: policy.RouterLocal}},
		"gateway, no conf":  {Name: "shop", Router: policy.Router{Type: policy.RouterGatewayAPI}},
		"local, bad stable": {Name: "shop", Router: policy.Router{Type: policy.RouterLocal, Local: &policy.LocalRouter{Stable: "x", Canary: "http://c"}}},
	} {
		_, err := newRouter(app, routerOptions{})
		if err == nil {
			t.Errorf("%s: New succeeded", name)
		}
		if name == "unknown type" && !errors.Is(err, errUnknownRouter) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
