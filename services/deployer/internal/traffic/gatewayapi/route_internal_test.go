package gatewayapi

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// FuzzSetWeights feeds arbitrary route JSON (what an API server, or whoever
// else edits the route, hands back) to the weight code: it must not panic,
// must leave content that unstructured can copy, and on success the route
// must read back at the weight set, needing no second update.
func FuzzSetWeights(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, file := range files {
		y, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		j, err := yaml.ToJSON(y)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j, 5)
	}
	f.Add([]byte(`{"spec":{"rules":[{"backendRefs":[{"name":"shop-stable","weight":1.5},{"name":"shop-canary","weight":-3}]}]}}`), 100)
	f.Add([]byte(`{"spec":{"rules":[null,{"backendRefs":[7,{"name":"shop-canary"},{"name":"shop-stable","weight":"x"}]}]}}`), 0)
	f.Add([]byte(`{"spec":{"rules":{}}}`), 1)
	f.Fuzz(func(t *testing.T, data []byte, w int) {
		if w < 0 || w > 100 {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
			return
		}
		route := &unstructured.Unstructured{Object: obj}
		_, err := setWeights(route, "shop-stable", "shop-canary", w)
		if err != nil {
			if !errors.Is(err, ErrBackendNotFound) && !errors.Is(err, ErrDuplicateBackend) {
				// Only a spec.rules of the wrong type may fail otherwise.
				if _, _, nerr := unstructured.NestedFieldNoCopy(obj, "spec", "rules"); nerr == nil {
					t.Fatalf("unexpected error: %v", err)
				}
			}
			return
		}
		route.DeepCopy() // panics on content unstructured cannot hold
		got, err := canaryWeight(route, "shop-stable", "shop-canary")
		if err != nil || got != w {
			t.Fatalf("canaryWeight after setWeights(%d) = %d, %v", w, got, err)
		}
		if changed, err := setWeights(route, "shop-stable", "shop-canary", w); err != nil || changed {
			t.Fatalf("second setWeights(%d): changed %v, %v", w, changed, err)
		}
	})
}
