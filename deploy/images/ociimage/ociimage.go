// Package ociimage builds Rampart's container images from its static Go
// binaries, without Docker. An image is one layer on no base image: the
// binary, /etc/passwd and /etc/group naming the nonroot user 65532, the CA
// certificates the services need for HTTPS, and an empty /tmp. There is no
// shell, no package manager and no libc to attack. Every timestamp, owner
// and mode in the layer is fixed, so the same binary gives the same digest
// on every build.
package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the uid and gid every image runs as; the Helm chart's
// securityContext names the same.
const User = 65532

// BinDir is where the binary sits in the image.
const BinDir = "/usr/local/bin"

// CACertsPath is where the CA bundle sits in the image (Go's crypto/x509
// looks there first on Linux).
const CACertsPath = "/etc/ssl/certs/ca-certificates.crt"

// RefNameAnnotation names an image in an OCI layout's index.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Spec is one image to build.
type Spec struct {
	// Name is the image's name, e.g. rampart-scanner.
	Name string
	// Binary is the path of a static Linux Go binary; its file name is the
	// entrypoint's.
	Binary string
	// CACerts is the path of a PEM bundle copied to CACertsPath; empty: none.
	CACerts string
	// Created is the image's creation time; zero is the Unix epoch, so that
	// a rebuild of the same binary gives the same digest.
	Created time.Time
	// Labels are added to the image config (org.opencontainers.image.*).
	Labels map[string]string
}

// Build makes the image of spec. The binary must be a Go binary built for
// linux without cgo: the image has no libc for it to link against.
func Build(spec Spec) (v1.Image, error) {
	if spec.Name == "" {
		return nil, errors.New("ociimage: an image needs a name")
	}
	arch, err := checkBinary(spec.Binary)
	if err != nil {
		return nil, err
	}
	created := spec.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	files, err := spec.files(created)
	if err != nil {
		return nil, err
	}
	tarball, err := tarOf(files, created)
	if err != nil {
		return nil, err
	}
	layer, err := layerOf(tarball)
	if err != nil {
		return nil, err
	}
	entry := path.Join(BinDir, path.Base(spec.Binary))
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", User, User),
			Entrypoint: []string{entry},
			Env:        []string{"PATH=" + BinDir, "SSL_CERT_FILE=" + CACertsPath},
			WorkingDir: "/",
			Labels:     spec.Labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), cfg)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "rampart ociimage: " + entry},
	})
}

// checkBinary refuses what would not run in the image: a file that is not
// a Go binary, one built for another OS, or one that needs cgo. It returns
// the binary's GOARCH.
func checkBinary(file string) (string, error) {
	info, err := buildinfo.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("ociimage: %s is not a Go binary: %w", file, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if goos := settings["GOOS"]; goos != "linux" {
		return "", fmt.Errorf("ociimage: %s is built for GOOS=%q, want linux", file, goos)
	}
	if settings["CGO_ENABLED"] != "0" {
		return "", fmt.Errorf("ociimage: %s is built with cgo; build it with CGO_ENABLED=0, the image has no libc", file)
	}
	return settings["GOARCH"], nil
}

// file is one entry of the image's only layer.
type file struct {
	name string // without a leading slash
	mode int64
	body []byte // nil: a directory
}

func (spec Spec) files(created time.Time) ([]file, error) {
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, err
	}
	files := []file{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", User)},
		{name: "etc/passwd", mode: 0o644, body: fmt.Appendf(nil,
			"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", User, User)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700},
		{name: "tmp/", mode: 0o1777},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: path.Join(BinDir, path.Base(spec.Binary))[1:], mode: 0o755, body: bin},
	}
	if spec.CACerts != "" {
		certs, err := os.ReadFile(spec.CACerts)
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: CACertsPath[1:], mode: 0o644, body: certs})
	}
	return files, nil
}

// tarOf writes files in order with fixed owners and times: root owns the
// tree, the nonroot user its home.
func tarOf(files []file, at time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: at, Format: tar.FormatUSTAR, Typeflag: tar.TypeReg, Size: int64(len(f.body))}
		if f.body == nil {
			h.Typeflag = tar.TypeDir
		}
		if f.name == "home/nonroot/" {
			h.Uid, h.Gid = User, User
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layerOf compresses an uncompressed layer tarball, once: the digest, the
// layout and a push all read the compressed bytes. Go's gzip writer puts no
// time or name in its header, so the compressed digest is stable too.
func layerOf(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// WriteLayout writes images into an OCI image layout at dir (created if
// missing, replaced if present), each named by RefNameAnnotation as
// name:tag, in the order given.
func WriteLayout(dir, tag string, names []string, images map[string]v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, n := range names {
		img, ok := images[n]
		if !ok {
			return fmt.Errorf("ociimage: no image %s", n)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{RefNameAnnotation: n + ":" + tag})); err != nil {
			return err
		}
	}
	return nil
}

// Named is one image of a layout with the name its index gives it.
type Named struct {
	Ref   string // RefNameAnnotation: name:tag
	Image v1.Image
}

// ReadLayout reads the images of the OCI layout at dir, in index order.
func ReadLayout(dir string) ([]Named, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := make([]Named, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		img, err := p.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("ociimage: %s in %s: %w", d.Digest, dir, err)
		}
		out = append(out, Named{Ref: d.Annotations[RefNameAnnotation], Image: img})
	}
	return out, nil
}

// Push pushes img as ref (registry/name:tag) with the credentials of the
// local Docker config, and returns the reference by digest. insecure
// allows plain HTTP to the registry.
func Push(ctx context.Context, ref string, img v1.Image, insecure bool) (string, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return tag.Context().Digest(d.String()).String(), nil
}
