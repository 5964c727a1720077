package contract

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func spec(t *testing.T, file, sha string) Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Repository: "github.com/acme/shop", SHA: sha, Path: "openapi.yaml", Data: b}
}

func TestDiff(t *testing.T) {
	base := spec(t, "v1.yaml", "1111")
	t.Run("compatible", func(t *testing.T) {
		breaks, err := Diff(base, spec(t, "v2-compatible.yaml", "2222"))
		if err != nil {
			t.Fatal(err)
		}
		if len(breaks) != 0 {
			t.Errorf("breaks %v, want none", breaks)
		}
	})
	t.Run("breaking", func(t *testing.T) {
		rev := spec(t, "v3-breaking.yaml", "3333")
		breaks, err := Diff(base, rev)
		if err != nil {
			t.Fatal(err)
		}
		var text []string
		for _, b := range breaks {
			text = append(text, b.String())
		}
		all := strings.Join(text, "\n")
		for _, want := range []string{"POST /orders", "[api-path-removed-without-deprecation]", "GET /orders/{id}", "request-parameter-type-changed"} {
			if !strings.Contains(all, want) {
				t.Errorf("breaks do not mention %q:\n%s", want, all)
			}
		}
		fs := Findings(breaks, rev)
		if len(fs) != len(breaks) {
			t.Fatalf("%d findings for %d breaks", len(fs), len(breaks))
		}
		high := 0
		for _, f := range fs {
			if f.Severity == finding.High {
				high++
			}
			if !strings.HasPrefix(f.ID, "openapi/") || f.Target != "openapi.yaml" || !strings.HasPrefix(f.Package, "openapi.yaml ") {
				t.Errorf("finding %+v", f)
			}
		}
		if high == 0 {
			t.Errorf("no High finding among %v", fs)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		_, err := Diff(base, Spec{Path: "openapi.yaml", Data: []byte("openapi: [")})
		if !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("err = %v, want ErrInvalidSpec", err)
		}
	})
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	if _, _, found, err := Find(dir, DefaultPaths); found || err != nil {
		t.Fatalf("empty dir: found=%v err=%v", found, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), []byte(`{"openapi":"3.0.3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, data, found, err := Find(dir, DefaultPaths)
	if err != nil || !found || p != "openapi.json" || string(data) != `{"openapi":"3.0.3"}` {
		t.Fatalf("Find = %q %q %v %v", p, data, found, err)
	}
	// A path that leaves the checkout is refused, not followed.
	if _, _, found, err := Find(dir, []string{"../outside.yaml"}); found || err == nil {
		t.Errorf("escaping path: found=%v err=%v, want an error", found, err)
	}
}

func TestObjectStore(t *testing.T) {
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	st, err := OpenObjectStore(t.Context(), b.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := st.Live(t.Context(), "github.com/acme/shop"); found || err != nil {
		t.Fatalf("empty store: found=%v err=%v", found, err)
	}
	want := spec(t, "v1.yaml", "1111")
	if err := st.SetLive(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	got, found, err := st.Live(t.Context(), "github.com/acme/shop")
	if err != nil || !found {
		t.Fatalf("Live: found=%v err=%v", found, err)
	}
	if got.SHA != "1111" || got.Path != "openapi.yaml" || string(got.Data) != string(want.Data) {
		t.Errorf("Live = %+v", got)
	}
}
