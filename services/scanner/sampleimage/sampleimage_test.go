package sampleimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rampartci/rampart/services/scanner/internal/hooks"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

func TestGoBinaryELFCarriesBuildInfo(t *testing.T) {
	bin := sampleimage.VulnerableAlpine().GoBinaries[0]
	info, err := buildinfo.Read(bytes.NewReader(bin.ELF()))
	if err != nil {
		t.Fatalf("buildinfo.Read: %v", err)
	}
	if info.GoVersion != "go1.26.8" || info.Main.Path != "example.com/app" {
		t.Errorf("build info = %s", info)
	}
	found := false
	for _, d := range info.Deps {
		if d.Path == "golang.org/x/net" && d.Version == "v0.15.0" {
			found = true
		}
	}
	if !found {
		t.Errorf("deps = %v, want golang.org/x/net v0.15.0", info.Deps)
	}
}

func TestBuildIsDeterministicAndHasApkDB(t *testing.T) {
	a, err := sampleimage.VulnerableAlpine().Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := sampleimage.VulnerableAlpine().Build()
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds of the same spec: %s != %s", da, db)
	}
	clean, _ := sampleimage.CleanAlpine().Build()
	if dc, _ := clean.Digest(); dc == da {
		t.Error("clean and vulnerable images have the same digest")
	}

	files := map[string]string{}
	tr := tar.NewReader(mutate.Extract(a))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		files[hdr.Name] = string(body)
	}
	if got := files["etc/alpine-release"]; got != "3.22.1\n" {
		t.Errorf("etc/alpine-release = %q", got)
	}
	if db := files["lib/apk/db/installed"]; !strings.Contains(db, "P:libcrypto3\nV:3.5.1-r0\nA:x86_64\n") || !strings.Contains(db, "o:openssl\n") {
		t.Errorf("apk database lacks libcrypto3 3.5.1-r0 from openssl:\n%s", db)
	}
	if _, ok := files["usr/local/bin/app"]; !ok {
		t.Error("Go binary missing")
	}
}

func TestRegistryPushPullAndNotify(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var puts []sampleimage.ManifestPut
	reg := sampleimage.StartRegistry(sampleimage.RegistryOptions{
		Username: "ci", Password: "s3cret",
		OnManifestPut: func(p sampleimage.ManifestPut) {
			mu.Lock()
			defer mu.Unlock()
			puts = append(puts, p)
		},
	})
	defer reg.Close()

	pushed, err := reg.BuildAndPush(ctx, "team/app", "v1", sampleimage.VulnerableAlpine())
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if !strings.HasPrefix(pushed.Ref(), "127.0.0.1:") || !strings.HasPrefix(pushed.Digest, "sha256:") {
		t.Errorf("pushed = %+v", pushed)
	}

	ref, err := name.ParseReference(pushed.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(ref, remote.WithContext(ctx)); err == nil {
		t.Error("anonymous pull from an authenticated registry succeeded")
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"}))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if d, _ := img.Digest(); d.String() != pushed.Digest {
		t.Errorf("pulled digest %s, pushed %s", d, pushed.Digest)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(puts) != 1 || puts[0].Repository != "team/app" || puts[0].Reference != "v1" || puts[0].Digest != pushed.Digest {
		t.Errorf("manifest puts = %+v", puts)
	}
}

func TestDistributionEnvelopeParses(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var puts []sampleimage.ManifestPut
	reg := sampleimage.StartRegistry(sampleimage.RegistryOptions{OnManifestPut: func(p sampleimage.ManifestPut) {
		mu.Lock()
		defer mu.Unlock()
		puts = append(puts, p)
	}})
	defer reg.Close()
	img, err := sampleimage.CleanAlpine().Build()
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := reg.PushIndex(ctx, "team/app", "multi", img)
	if err != nil {
		t.Fatalf("PushIndex: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	// The image manifest first (by digest), then the index (by tag).
	if len(puts) != 2 {
		t.Fatalf("manifest puts = %+v", puts)
	}
	last := puts[1]
	body, err := last.DistributionEnvelope(reg.Host, "evt-1", time.Date(2026, 8, 14, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	got, err := hooks.ParseDistribution(hooks.DistributionMediaType, body)
	if err != nil {
		t.Fatalf("ParseDistribution of the rendered envelope: %v\n%s", err, body)
	}
	if len(got) != 1 || got[0].Ref() != pushed.Ref() || got[0].Tag != "multi" ||
		got[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("parsed = %+v, want %s tagged multi", got, pushed.Ref())
	}
}
