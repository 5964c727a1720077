package helm_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	corev1 "k8s.io/api/core/v1"

	"github.com/rampartci/rampart/pkg/kubetest"
)

const (
	chartDir  = "rampart"
	release   = "rel"
	namespace = "rampart"
	fullname  = "rel-rampart"
	// appNamespace is the one namespace testdata/values.yaml lets the
	// deployer into.
	appNamespace = "shop"
)

var services = []string{"scanner", "deployer", "watcher", "notifier", "ledger"}

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// helm runs the helm binary `make tools` built (skipping the test without
// one) and returns its standard output, or an error with its standard error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := kubetest.Lookup("helm")
	if err != nil {
		kubetest.Skip(t, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// helm keeps no state a test needs; keep it out of the user's home.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// templateArgs renders the chart with the test values and the example
// policy, plus extra flags.
func templateArgs(extra ...string) []string {
	return append([]string{"template", release, chartDir, "--namespace", namespace,
		"-f", "testdata/values.yaml", "--set-file", "policy.rampartYaml=../../docs/examples/rampart.yaml"}, extra...)
}

// render is the chart's objects as helm template renders them.
func render(t *testing.T, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, templateArgs(extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kubetest.Objects(strings.NewReader(manifest))
	if err != nil {
		t.Fatalf("decode rendered chart: %v", err)
	}
	return objs
}

// find is the object of kind and name, or fails the test.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if slices.Contains(kinds, o.GetKind()) {
			out = append(out, o)
		}
	}
	return out
}

// into converts an unstructured object (or part of one) to a typed one.
func into[T any](t *testing.T, obj map[string]any) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, v, true); err != nil {
		t.Fatalf("convert to %T: %v", v, err)
	}
	return v
}

// podTemplate is the pod template of a Deployment or StatefulSet.
func podTemplate(t *testing.T, o *unstructured.Unstructured) *corev1.PodTemplateSpec {
	t.Helper()
	m, ok, err := unstructured.NestedMap(o.Object, "spec", "template")
	if err != nil || !ok {
		t.Fatalf("%s %s: no pod template", o.GetKind(), o.GetName())
	}
	return into[corev1.PodTemplateSpec](t, m)
}
