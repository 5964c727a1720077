package gatewayapi_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/traffic"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/gatewayapi"
)

var _ traffic.Router = (*gatewayapi.Router)(nil)

var shopConf = policy.GatewayAPIRouter{Namespace: "shop", Route: "shop", StableBackend: "shop-stable", CanaryBackend: "shop-canary"}

func TestSetWeightSetsBothBackendsInEverySplitRule(t *testing.T) {
	for _, w := range []int{0, 1, 5, 50, 99, 100} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			c := newCluster(t, loadRoute(t, "httproute.yaml"))
			r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.SetWeight(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			if r.Weight() != w {
				t.Fatalf("Weight() = %d", r.Weight())
			}
			route := storedRoute(t, c, "shop", "shop")
			want := map[string]int64{"shop-stable": int64(100 - w), "shop-canary": int64(w)}
			for _, i := range []int{0, 2} {
				if got := ruleWeights(t, route, i); !reflect.DeepEqual(got, want) {
					t.Errorf("rule %d weights %v, want %v", i, got, want)
				}
			}
			// The stable-only rule is not touched: no weight appears.
			if got := ruleWeights(t, route, 1); !reflect.DeepEqual(got, map[string]int64{"shop-stable": -1}) {
				t.Errorf("rule 1 weights %v", got)
			}
			if route.GetResourceVersion() != "2" {
				t.Errorf("resourceVersion %s after one update", route.GetResourceVersion())
			}
			// Everything else is kept.
			orig := loadRoute(t, "httproute.yaml")
			for _, path := range [][]string{{"spec", "parentRefs"}, {"spec", "hostnames"}, {"metadata", "labels"}} {
				a, _, _ := unstructured.NestedFieldNoCopy(orig.Object, path...)
				b, _, _ := unstructured.NestedFieldNoCopy(route.Object, path...)
				if !reflect.DeepEqual(a, b) {
					t.Errorf("%s changed: %v → %v", strings.Join(path, "."), a, b)
				}
			}
			if got := countActions(c, "patch"); got != 1 {
				t.Errorf("%d patches", got)
			}
		})
	}
}

// Setting the weight the route already has makes no update.
func TestSetWeightUnchangedMakesNoUpdate(t *testing.T) {
	c := newCluster(t, loadRoute(t, "httproute.yaml"))
	r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if err := r.SetWeight(ctx, 25); err != nil {
			t.Fatal(err)
		}
	}
	if got := countActions(c, "patch"); got != 1 {
		t.Fatalf("%d patches for one change", got)
	}
}

// Another writer changes the route between our read and our update: the
// update is refused with a conflict, and the retry starts from a fresh read
// so the other writer's change is kept.
func TestSetWeightRetriesAConflictWithoutLosingTheOtherWrite(t *testing.T) {
	c := newCluster(t, loadRoute(t, "httproute.yaml"))
	var updates atomic.Int32
	c.PrependReactor("patch", "httproutes", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if updates.Add(1) == 1 {
			other := storedRoute(t, c, "shop", "shop").DeepCopy()
			other.SetLabels(map[string]string{"app.kubernetes.io/name": "shop", "team": "payments"})
			bumpResourceVersion(other)
			if err := c.Tracker().Update(gatewayapi.HTTPRoutes, other, "shop"); err != nil {
				t.Error(err)
			}
		}
		return false, nil, nil
	})
	r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeight(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	route := storedRoute(t, c, "shop", "shop")
	if got := ruleWeights(t, route, 0); got["shop-canary"] != 5 || got["shop-stable"] != 95 {
		t.Fatalf("weights %v", got)
	}
	if route.GetLabels()["team"] != "payments" {
		t.Fatalf("the other writer's label was lost: %v", route.GetLabels())
	}
	if route.GetResourceVersion() != "3" {
		t.Fatalf("resourceVersion %s, want 3 (theirs, then ours)", route.GetResourceVersion())
	}
	if u, g := countActions(c, "patch"), countActions(c, "get"); u != 2 || g != 2 {
		t.Fatalf("%d patches and %d gets, want 2 and 2", u, g)
	}
}

// A route that keeps changing is given up on after MaxAttempts, with the
// conflict still recognisable.
func TestSetWeightGivesUpAfterMaxAttempts(t *testing.T) {
	c := newCluster(t, loadRoute(t, "httproute.yaml"))
	c.PrependReactor("patch", "httproutes", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(gatewayapi.HTTPRoutes.GroupResource(), "shop", errors.New("modified"))
	})
	r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{MaxAttempts: 3, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = r.SetWeight(context.Background(), 50)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if got := countActions(c, "patch"); got != 3 {
		t.Fatalf("%d patches, want 3", got)
	}
	if r.Weight() != 0 {
		t.Fatalf("Weight() = %d after a failed SetWeight", r.Weight())
	}
}

// The wait between attempts ends with ctx.
func TestSetWeightStopsWithContext(t *testing.T) {
	c := newCluster(t, loadRoute(t, "httproute.yaml"))
	ctx, cancel := context.WithCancel(context.Background())
	c.PrependReactor("patch", "httproutes", func(action k8stesting.Action) (bool, runtime.Object, error) {
		cancel()
		return true, nil, apierrors.NewConflict(gatewayapi.HTTPRoutes.GroupResource(), "shop", errors.New("modified"))
	})
	r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{MaxAttempts: 100, Backoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeight(ctx, 50); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 1 attempts") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetWeightRefusesRoutesItCannotSplit(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    error
		message string
	}{
		{"httproute-no-canary.yaml", gatewayapi.ErrBackendNotFound, `backend "shop-canary" is in no rule (backends: shop-legacy, shop-stable)`},
		{"httproute-duplicate.yaml", gatewayapi.ErrDuplicateBackend, `lists backend "shop-canary" twice`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c := newCluster(t, loadRoute(t, tc.file))
			r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for name, call := range map[string]func(context.Context) error{
				"SetWeight": func(ctx context.Context) error { return r.SetWeight(ctx, 5) },
				"Start":     r.Start,
			} {
				err := call(context.Background())
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "shop/shop") {
					t.Errorf("%s: err = %v", name, err)
				}
			}
			if got := countActions(c, "patch"); got != 0 {
				t.Fatalf("%d patches of a route that cannot be split", got)
			}
		})
	}
}

func TestSetWeightMissingRoute(t *testing.T) {
	c := newCluster(t)
	r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeight(context.Background(), 5); !apierrors.IsNotFound(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestSetWeightRejectsOutOfRangeWithoutARequest(t *testing.T) {
	c := newCluster(t, loadRoute(t, "httproute.yaml"))
	r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{-1, 101} {
		if err := r.SetWeight(context.Background(), w); !errors.Is(err, traffic.ErrInvalidWeight) {
			t.Errorf("SetWeight(%d) = %v", w, err)
		}
	}
	if n := len(c.Actions()); n != 0 {
		t.Fatalf("%d requests for invalid weights", n)
	}
}

// Start reads the weight in force, so a restarted deployer knows it.
func TestStartReadsTheCurrentWeight(t *testing.T) {
	for _, tc := range []struct {
		file string
		want int
	}{
		{"httproute.yaml", 0}, // the first split rule: 100/0
		{"httproute-default-weights.yaml", 50},
	} {
		c := newCluster(t, loadRoute(t, tc.file))
		r, err := gatewayapi.New(shopConf, c, gatewayapi.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r.Weight() != tc.want {
			t.Errorf("%s: Weight() = %d after Start, want %d", tc.file, r.Weight(), tc.want)
		}
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewValidatesConfiguration(t *testing.T) {
	c := newCluster(t)
	for _, conf := range []policy.GatewayAPIRouter{
		{Route: "shop", StableBackend: "a", CanaryBackend: "b"},
		{Namespace: "shop", StableBackend: "a", CanaryBackend: "b"},
		{Namespace: "shop", Route: "shop", StableBackend: "a"},
		{Namespace: "shop", Route: "shop", StableBackend: "a", CanaryBackend: "a"},
	} {
		if _, err := gatewayapi.New(conf, c, gatewayapi.Options{}); err == nil {
			t.Errorf("New(%+v) succeeded", conf)
		}
	}
	if _, err := gatewayapi.New(shopConf, nil, gatewayapi.Options{}); err == nil {
		t.Error("New without a client succeeded")
	}
}
