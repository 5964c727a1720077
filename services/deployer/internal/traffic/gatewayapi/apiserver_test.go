package gatewayapi_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/rampartci/rampart/pkg/kubetest"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/clustertest"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/gatewayapi"
)

// The tests below run the router against a real kube-apiserver with the
// Gateway API CRDs installed, through the deployer's ServiceAccount bound
// to the chart's Role: what the API server validates, defaults and
// authorizes is real.

var crdsOnce sync.Once

// realRoute creates testdata/httproute.yaml in a namespace of its own on
// the shared apiserver and returns the router's client (the deployer's
// token), an admin client and the router's configuration.
func realRoute(t *testing.T, ns string) (deployer, admin dynamic.Interface, conf policy.GatewayAPIRouter) {
	t.Helper()
	srv := kubetest.Shared(t)
	crdsOnce.Do(func() {
		dir, err := kubetest.GatewayAPICRDs()
		if err != nil {
			t.Fatal(err)
		}
		srv.InstallCRDs(t, dir)
	})
	srv.Namespace(t, ns, nil)
	admin, err := dynamic.NewForConfig(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	route := loadRoute(t, "httproute.yaml")
	route.SetNamespace(ns)
	route.SetResourceVersion("")
	if _, err := admin.Resource(gatewayapi.HTTPRoutes).Namespace(ns).Create(t.Context(), route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deployer, err = dynamic.NewForConfig(clustertest.DeployerConfig(t, srv, ns))
	if err != nil {
		t.Fatal(err)
	}
	conf = shopConf
	conf.Namespace = ns
	return deployer, admin, conf
}

func getRoute(t *testing.T, c dynamic.Interface, ns string) *unstructured.Unstructured {
	t.Helper()
	r, err := c.Resource(gatewayapi.HTTPRoutes).Namespace(ns).Get(t.Context(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A rollout's weights, set on a real HTTPRoute and read back as stored.
func TestAPIServerSetsWeights(t *testing.T) {
	deployer, admin, conf := realRoute(t, "weights")
	r, err := gatewayapi.New(conf, deployer, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.Weight() != 0 {
		t.Fatalf("Start read weight %d, want 0 (rule 0's canary)", r.Weight())
	}
	for _, w := range []int{5, 25, 50, 100, 0} {
		if err := r.SetWeight(t.Context(), w); err != nil {
			t.Fatalf("weight %d: %v", w, err)
		}
		route := getRoute(t, admin, conf.Namespace)
		want := map[string]int64{"shop-stable": int64(100 - w), "shop-canary": int64(w)}
		for _, i := range []int{0, 2} {
			if got := ruleWeights(t, route, i); !reflect.DeepEqual(got, want) {
				t.Fatalf("weight %d: rule %d stored as %v", w, i, got)
			}
		}
		if got := ruleWeights(t, route, 1); !reflect.DeepEqual(got, map[string]int64{"shop-stable": 1}) {
			t.Fatalf("rule 1 (stable only, weight defaulted to 1 by the CRD) is %v", got)
		}
	}
	// A restarted deployer reads the weight back.
	r2, _ := gatewayapi.New(conf, deployer, gatewayapi.Options{})
	if err := r.SetWeight(t.Context(), 25); err != nil {
		t.Fatal(err)
	}
	if err := r2.Start(t.Context()); err != nil || r2.Weight() != 25 {
		t.Fatalf("restarted router: weight %d, %v", r2.Weight(), err)
	}
}

// Another writer (a person with kubectl, a GitOps controller) changes the
// route while the router sets weights: the apiserver refuses the stale
// patch, the router retries from a fresh read, and both writes survive.
func TestAPIServerConflictKeepsTheOtherWrite(t *testing.T) {
	deployer, admin, conf := realRoute(t, "conflict")
	r, err := gatewayapi.New(conf, deployer, gatewayapi.Options{MaxAttempts: 50})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	edits := 0
	wg.Go(func() {
		for ctx.Err() == nil {
			// The other writer edits the rules too: a stale patch of
			// the rules would undo its edit.
			route := getRoute(t, admin, conf.Namespace)
			rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
			matches := rules[1].(map[string]any)["matches"].([]any)
			_ = unstructured.SetNestedField(matches[0].(map[string]any), fmt.Sprintf("/admin-%d", edits+1), "path", "value")
			_ = unstructured.SetNestedSlice(route.Object, rules, "spec", "rules")
			_, err := admin.Resource(gatewayapi.HTTPRoutes).Namespace(conf.Namespace).Update(ctx, route, metav1.UpdateOptions{})
			switch {
			case err == nil:
				edits++
			case apierrors.IsConflict(err), ctx.Err() != nil:
			default:
				t.Error(err)
				return
			}
		}
	})
	for i := range 40 {
		w := i%100 + 1
		if err := r.SetWeight(ctx, w); err != nil {
			t.Fatalf("weight %d: %v", w, err)
		}
	}
	cancel()
	wg.Wait()
	route := getRoute(t, admin, conf.Namespace)
	if got := ruleWeights(t, route, 0); got["shop-canary"] != 40 || got["shop-stable"] != 60 {
		t.Fatalf("weights %v after the last SetWeight(40)", got)
	}
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	matches := rules[1].(map[string]any)["matches"].([]any)
	path, _, _ := unstructured.NestedString(matches[0].(map[string]any), "path", "value")
	if path != fmt.Sprintf("/admin-%d", edits) || edits == 0 {
		t.Fatalf("rule 1 path %q, the other writer's last of %d edits lost", path, edits)
	}
}

// The deployer's Role lets it get and patch HTTPRoutes where the values
// name, and nothing else: the real apiserver refuses the rest.
func TestAPIServerRBAC(t *testing.T) {
	deployer, admin, conf := realRoute(t, "rbac-routes")
	kubetest.Shared(t).Namespace(t, "rbac-elsewhere", nil)
	route := loadRoute(t, "httproute.yaml")
	route.SetNamespace("rbac-elsewhere")
	route.SetResourceVersion("")
	if _, err := admin.Resource(gatewayapi.HTTPRoutes).Namespace("rbac-elsewhere").Create(t.Context(), route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	forbidden := func(what string, err error) {
		t.Helper()
		var s apierrors.APIStatus
		if !errors.As(err, &s) || !apierrors.IsForbidden(s.(error)) {
			t.Errorf("%s: %v, want forbidden", what, err)
		}
	}
	routes := deployer.Resource(gatewayapi.HTTPRoutes)
	stored := getRoute(t, admin, conf.Namespace)
	_, err := routes.Namespace(conf.Namespace).Update(t.Context(), stored, metav1.UpdateOptions{})
	forbidden("update (PUT) an HTTPRoute", err)
	forbidden("delete an HTTPRoute", routes.Namespace(conf.Namespace).Delete(t.Context(), "shop", metav1.DeleteOptions{}))
	_, err = routes.Namespace(conf.Namespace).List(t.Context(), metav1.ListOptions{})
	forbidden("list HTTPRoutes", err)
	elsewhere := conf
	elsewhere.Namespace = "rbac-elsewhere"
	r, err := gatewayapi.New(elsewhere, deployer, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forbidden("set a weight in a namespace the Role is not in", r.SetWeight(t.Context(), 5))
	// In its own namespace the router does its job with the same token.
	r, _ = gatewayapi.New(conf, deployer, gatewayapi.Options{})
	if err := r.SetWeight(t.Context(), 5); err != nil {
		t.Fatalf("the Role does not let the router set a weight: %v", err)
	}
}
