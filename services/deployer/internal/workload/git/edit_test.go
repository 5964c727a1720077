package git

import (
	"strings"
	"testing"
)

const ref = "registry.example.com/shop@sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestSetKustomizeImage(t *testing.T) {
	in := `# the shop, canary overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
images:
  - name: registry.example.com/envoy
    newTag: "1.30"
  - name: shop
    newName: registry.example.com/shop
    newTag: "1.0" # the last release
`
	out, err := setKustomizeImage([]byte(in), "shop", ref)
	if err != nil {
		t.Fatal(err)
	}
	want := `# the shop, canary overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base
images:
  - name: registry.example.com/envoy
    newTag: "1.30"
  - name: shop
    newName: registry.example.com/shop
    digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
`
	if string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
	again, err := setKustomizeImage(out, "shop", ref)
	if err != nil || string(again) != string(out) {
		t.Fatalf("setting the same image again changed the file:\n%s (%v)", again, err)
	}
	// An absent entry, and an absent images list, are added.
	out, err = setKustomizeImage([]byte("resources: [../base]\n"), "shop", ref)
	if err != nil || !strings.Contains(string(out), "images:\n  - name: shop\n    newName: registry.example.com/shop\n    digest: sha256:1111") {
		t.Fatalf("added:\n%s (%v)", out, err)
	}
	for _, bad := range []string{"images: {shop: x}\n", "- a\n- b\n", "a: [\n"} {
		if _, err := setKustomizeImage([]byte(bad), "shop", ref); err == nil {
			t.Errorf("%q was edited", bad)
		}
	}
}

func TestSetValue(t *testing.T) {
	in := "replicaCount: 3\ncanary:\n  enabled: true # on\n"
	out, err := setValue([]byte(in), "canary.image", ref)
	if err != nil {
		t.Fatal(err)
	}
	if want := "replicaCount: 3\ncanary:\n  enabled: true # on\n  image: " + ref + "\n"; string(out) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
	out, err = setValue([]byte(""), "image.shop.ref", ref)
	if err != nil || string(out) != "image:\n  shop:\n    ref: "+ref+"\n" {
		t.Fatalf("in an empty file:\n%s (%v)", out, err)
	}
	for _, bad := range []string{"canary: 5\n", "canary:\n  image: {repository: x}\n"} {
		if _, err := setValue([]byte(bad), "canary.image", ref); err == nil {
			t.Errorf("%q was edited", bad)
		}
	}
}
