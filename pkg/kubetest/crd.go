package kubetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// GatewayAPIVersion is the Gateway API release whose CRDs GatewayAPICRDs
// finds.
const GatewayAPIVersion = "v1.6.3"

var crds = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// GatewayAPICRDs is the directory of Gateway API's standard-channel CRDs
// (HTTPRoute, Gateway, ...) in the Go module cache, downloaded through the
// module proxy when the cache lacks them.
func GatewayAPICRDs() (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/gateway-api@"+GatewayAPIVersion)
	cmd.Dir = os.TempDir() // outside any module or workspace
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); jerr != nil || mod.Dir == "" {
		return "", fmt.Errorf("kubetest: go mod download sigs.k8s.io/gateway-api@%s: %v %s", GatewayAPIVersion, err, mod.Error)
	}
	return filepath.Join(mod.Dir, "config", "crd", "standard"), nil
}

// InstallCRDs creates the CustomResourceDefinitions in the YAML files of
// dir (other kinds there are left out) and waits until each is established.
func (s *Server) InstallCRDs(t testing.TB, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("kubetest: no CRD files in %s: %v", dir, err)
	}
	dyn, err := dynamic.NewForConfig(s.Config())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			t.Fatalf("kubetest: %s: %v", f, err)
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			data, err := json.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			force := true
			if _, err := dyn.Resource(crds).Patch(t.Context(), o.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: "kubetest", Force: &force}); err != nil {
				t.Fatalf("kubetest: apply CRD %s: %v", o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for !established(t, dyn, name) {
			if time.Now().After(deadline) {
				t.Fatalf("kubetest: CRD %s not established after 30s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func readObjects(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Objects(f)
}

func established(t testing.TB, dyn dynamic.Interface, name string) bool {
	crd, err := dyn.Resource(crds).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// Objects decodes every object of a multi-document YAML (or JSON) stream,
// such as a rendered Helm chart or a CRD file; empty documents are skipped.
func Objects(r io.Reader) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}
