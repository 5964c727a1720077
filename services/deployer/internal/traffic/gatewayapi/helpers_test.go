package gatewayapi_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/rampartci/rampart/services/deployer/internal/clustertest"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/gatewayapi"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

// loadRoute reads an HTTPRoute from testdata the way the API server's JSON
// decoder would type it (integers as int64).
func loadRoute(t testing.TB, file string) *unstructured.Unstructured {
	t.Helper()
	y, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.ToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, j)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return obj.(*unstructured.Unstructured)
}

// newCluster is client-go's fake dynamic client holding routes, with the
// API server's merge patches and optimistic concurrency added (the fake's
// tracker alone ignores a patch's resourceVersion): a patch that carries a
// resourceVersion must carry the stored one, and each accepted patch gets
// the next.
func newCluster(t testing.TB, routes ...*unstructured.Unstructured) *fake.FakeDynamicClient {
	t.Helper()
	objs := make([]runtime.Object, len(routes))
	for i, r := range routes {
		objs[i] = r
	}
	c := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gatewayapi.HTTPRoutes: "HTTPRouteList"}, objs...)
	tracker := c.Tracker()
	c.PrependReactor("patch", "httproutes", func(action k8stesting.Action) (bool, runtime.Object, error) {
		pa := action.(k8stesting.PatchAction)
		if pa.GetPatchType() != types.MergePatchType {
			return true, nil, fmt.Errorf("patch type %s, want %s", pa.GetPatchType(), types.MergePatchType)
		}
		stored, err := tracker.Get(action.GetResource(), action.GetNamespace(), pa.GetName())
		if err != nil {
			return true, nil, err
		}
		obj := stored.(*unstructured.Unstructured).DeepCopy()
		patched, err := applyPatch(obj, pa.GetPatch())
		if err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}
		if patched.GetResourceVersion() != obj.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(action.GetResource().GroupResource(), pa.GetName(),
				fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		bumpResourceVersion(patched)
		if err := tracker.Update(action.GetResource(), patched, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, patched, nil
	})
	return c
}

// applyPatch is obj with the JSON merge patch (RFC 7386) applied.
func applyPatch(obj *unstructured.Unstructured, patch []byte) (*unstructured.Unstructured, error) {
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	out := obj.DeepCopy()
	merge(out.Object, p)
	// Numbers as the API server's decoder types them.
	b, err := json.Marshal(out.Object)
	if err != nil {
		return nil, err
	}
	res := &unstructured.Unstructured{}
	return res, res.UnmarshalJSON(b)
}

func merge(dst, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, pm)
				continue
			}
		}
		dst[k] = v
	}
}

func bumpResourceVersion(obj *unstructured.Unstructured) {
	n, _ := strconv.Atoi(obj.GetResourceVersion())
	obj.SetResourceVersion(strconv.Itoa(n + 1))
}

// storedRoute is the route as the fake cluster holds it now.
func storedRoute(t testing.TB, c *fake.FakeDynamicClient, ns, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := c.Tracker().Get(gatewayapi.HTTPRoutes, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*unstructured.Unstructured)
}

// countActions counts the client's requests with verb.
func countActions(c *fake.FakeDynamicClient, verb string) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == verb {
			n++
		}
	}
	return n
}

// ruleWeights are the weights of rule i's backends by name; -1 for a
// backend without one.
func ruleWeights(t testing.TB, route *unstructured.Unstructured, i int) map[string]int64 {
	t.Helper()
	rules, _, err := unstructured.NestedSlice(route.Object, "spec", "rules")
	if err != nil || i >= len(rules) {
		t.Fatalf("spec.rules: %v (%d rules)", err, len(rules))
	}
	refs, _, err := unstructured.NestedSlice(rules[i].(map[string]any), "backendRefs")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range refs {
		m := r.(map[string]any)
		w, ok := m["weight"].(int64)
		if !ok {
			w = -1
		}
		out[m["name"].(string)] = w
	}
	return out
}
