package ociimage_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/rampartci/rampart/deploy/images/ociimage"
)

// goBuild builds a tiny Go program for goos with cgo set as given.
func goBuild(t *testing.T, goos, cgo string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED="+cgo, "GOWORK=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// layerFiles reads the image's only layer: name → header.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestBuild(t *testing.T) {
	bin := goBuild(t, "linux", "0")
	certs := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(certs, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := ociimage.Spec{Name: "rampart-hello", Binary: bin, CACerts: certs, Labels: map[string]string{"org.opencontainers.image.version": "v1"}}
	img, err := ociimage.Build(spec)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the same binary gives the same digest", func(t *testing.T) {
		again, err := ociimage.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d1, _ := img.Digest()
		d2, _ := again.Digest()
		if d1 != d2 {
			t.Fatalf("digests differ: %s and %s", d1, d2)
		}
		later := spec
		later.Created = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		other, err := ociimage.Build(later)
		if err != nil {
			t.Fatal(err)
		}
		if d3, _ := other.Digest(); d3 == d1 {
			t.Fatal("another creation time gave the same digest: the time is not in the image")
		}
	})

	t.Run("OCI media types and a nonroot config", func(t *testing.T) {
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("manifest media type %s", mt)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
			t.Errorf("config %s, layer %s", m.Config.MediaType, m.Layers[0].MediaType)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.User != "65532:65532" || cfg.OS != "linux" || cfg.Architecture != "amd64" {
			t.Errorf("user %q os %q arch %q", cfg.Config.User, cfg.OS, cfg.Architecture)
		}
		if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/usr/local/bin/hello" {
			t.Errorf("entrypoint %q", got)
		}
		if !cfg.Created.Equal(time.Unix(0, 0)) || cfg.Config.Labels["org.opencontainers.image.version"] != "v1" {
			t.Errorf("created %v labels %v", cfg.Created, cfg.Config.Labels)
		}
		if len(cfg.RootFS.DiffIDs) != 1 || len(cfg.History) != 1 {
			t.Errorf("rootfs %v history %v", cfg.RootFS.DiffIDs, cfg.History)
		}
	})

	t.Run("the layer: the binary, users and certificates, no shell", func(t *testing.T) {
		files := layerFiles(t, img)
		for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/bin"} {
			if _, ok := files[shell]; ok {
				t.Errorf("%s is in the image", shell)
			}
		}
		h := files["/usr/local/bin/hello"]
		if h == nil || h.Mode != 0o755 || h.Uid != 0 {
			t.Fatalf("binary header %+v", h)
		}
		if fi, _ := os.Stat(bin); h.Size != fi.Size() {
			t.Errorf("binary size %d, want %d", h.Size, fi.Size())
		}
		for _, want := range []string{"/etc/passwd", "/etc/group", ociimage.CACertsPath, "/tmp", "/home/nonroot"} {
			if files[want] == nil {
				t.Errorf("%s missing", want)
			}
		}
		if h := files["/home/nonroot"]; h != nil && (h.Uid != ociimage.User || h.Gid != ociimage.User) {
			t.Errorf("home owned by %d:%d", h.Uid, h.Gid)
		}
		if h := files["/tmp"]; h != nil && h.Mode != 0o1777 {
			t.Errorf("/tmp mode %o", h.Mode)
		}
		for name, h := range files {
			if !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s has time %v", name, h.ModTime)
			}
		}
	})

	t.Run("an OCI layout names every image", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "oci")
		if err := ociimage.WriteLayout(dir, "v1", []string{"rampart-hello"}, map[string]v1.Image{"rampart-hello": img}); err != nil {
			t.Fatal(err)
		}
		images, err := ociimage.ReadLayout(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()
		if len(images) != 1 || images[0].Ref != "rampart-hello:v1" {
			t.Fatalf("layout %+v", images)
		}
		if got, _ := images[0].Image.Digest(); got != want {
			t.Fatalf("digest %s in the layout, want %s", got, want)
		}
		if err := ociimage.WriteLayout(dir, "v1", []string{"missing"}, nil); err == nil {
			t.Error("a layout of an image that was not built was written")
		}
	})
}

func TestBuildRefuses(t *testing.T) {
	notGo := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notGo, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		spec ociimage.Spec
		want string
	}{
		"no name":         {ociimage.Spec{Binary: notGo}, "needs a name"},
		"not a Go binary": {ociimage.Spec{Name: "x", Binary: notGo}, "not a Go binary"},
		"missing binary":  {ociimage.Spec{Name: "x", Binary: filepath.Join(t.TempDir(), "none")}, "not a Go binary"},
		"darwin binary":   {ociimage.Spec{Name: "x", Binary: goBuild(t, "darwin", "0")}, `GOOS="darwin"`},
		"cgo binary":      {ociimage.Spec{Name: "x", Binary: goBuild(t, "linux", "1")}, "cgo"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ociimage.Build(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
