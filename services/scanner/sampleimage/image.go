// Package sampleimage builds real OCI images in-process and serves them from
// an in-memory registry that sends Distribution push notifications, so the
// scanner's tests and `rampart demo` scan real images offline, with outcomes
// known in advance: CleanAlpine and VulnerableAlpine match the fixture
// vulnerability DB the scanner builds with --fixture-db.
//
// It is public (decision 0009): it is test and demo tooling with no scanner
// logic in it, and the rampart command's demo needs it.
//
// The images are small but genuine as far as Trivy is concerned: an Alpine
// release file and apk database (with origin lines, which Alpine advisories
// are keyed by), and optionally Go executables carrying module build info.
package sampleimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the modification time of every file, so the same Image always
// builds to the same digest.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Package is one entry of the apk database (lib/apk/db/installed).
type Package struct {
	Name    string // P: binary package name, e.g. libcrypto3
	Version string // V: e.g. 3.5.1-r0
	Origin  string // o: source package Alpine advisories are keyed by, e.g. openssl
	License string // L:
	Files   []string
}

// Module is a Go module dependency recorded in a Go binary's build info.
type Module struct {
	Path    string
	Version string
}

// GoBinary is an executable carrying Go build info (the "\xff Go buildinf:"
// blob that `go version -m` and Trivy read), listing its module
// dependencies. It is a minimal ELF file, not a runnable program.
type GoBinary struct {
	Path      string // where it is installed in the image, e.g. usr/local/bin/app
	GoVersion string // e.g. go1.26.8
	Main      string // main module path
	Deps      []Module
}

// Image describes an Alpine-like image. Each non-empty part becomes its own
// layer: the OS (release file and apk database), then Go binaries, then extra
// files.
type Image struct {
	AlpineRelease string // contents of etc/alpine-release, e.g. 3.22.1
	Packages      []Package
	GoBinaries    []GoBinary
	Files         map[string]string // extra files by path, mode 0644
}

// Build assembles the image (linux/amd64) from its layers.
func (spec Image) Build() (v1.Image, error) {
	var layers []v1.Layer
	if spec.AlpineRelease != "" || len(spec.Packages) > 0 {
		files := []file{
			{name: "etc/alpine-release", data: []byte(spec.AlpineRelease + "\n"), mode: 0o644},
			{name: "etc/os-release", data: []byte(osRelease(spec.AlpineRelease)), mode: 0o644},
			{name: "lib/apk/db/installed", data: []byte(apkInstalled(spec.Packages)), mode: 0o644},
		}
		l, err := layer(files)
		if err != nil {
			return nil, fmt.Errorf("build OS layer: %w", err)
		}
		layers = append(layers, l)
	}
	if len(spec.GoBinaries) > 0 {
		var files []file
		for _, b := range spec.GoBinaries {
			files = append(files, file{name: b.Path, data: b.ELF(), mode: 0o755})
		}
		l, err := layer(files)
		if err != nil {
			return nil, fmt.Errorf("build Go binary layer: %w", err)
		}
		layers = append(layers, l)
	}
	if len(spec.Files) > 0 {
		var files []file
		for _, name := range sortedKeys(spec.Files) {
			files = append(files, file{name: name, data: []byte(spec.Files[name]), mode: 0o644})
		}
		l, err := layer(files)
		if err != nil {
			return nil, fmt.Errorf("build files layer: %w", err)
		}
		layers = append(layers, l)
	}

	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// osRelease is Alpine's etc/os-release for the given release.
func osRelease(release string) string {
	minor := release
	if parts := strings.SplitN(release, ".", 3); len(parts) >= 2 {
		minor = parts[0] + "." + parts[1]
	}
	return fmt.Sprintf(`NAME="Alpine Linux"
ID=alpine
VERSION_ID=%s
PRETTY_NAME="Alpine Linux v%s"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`, release, minor)
}

// apkInstalled renders the apk database in apk-tools' format: one paragraph
// per package, fields in the order apk writes them ("o:" after "V:", which
// Trivy relies on to pair the origin with the version).
func apkInstalled(pkgs []Package) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "P:%s\nV:%s\nA:x86_64\n", p.Name, p.Version)
		fmt.Fprintf(&b, "T:%s\n", p.Name)
		if p.License != "" {
			fmt.Fprintf(&b, "L:%s\n", p.License)
		}
		origin := p.Origin
		if origin == "" {
			origin = p.Name
		}
		fmt.Fprintf(&b, "o:%s\n", origin)
		fmt.Fprintf(&b, "m:Rampart fixtures <fixtures@rampart.invalid>\n")
		// Files grouped by directory, as F:/R: lines.
		dir := ""
		for _, f := range p.Files {
			d, base := path.Split(f)
			d = strings.TrimSuffix(d, "/")
			if d != dir {
				fmt.Fprintf(&b, "F:%s\n", d)
				dir = d
			}
			fmt.Fprintf(&b, "R:%s\n", base)
		}
		b.WriteString("\n")
	}
	return b.String()
}

type file struct {
	name string
	data []byte
	mode int64
}

// layer writes the files (with their parent directories) into a tar and wraps
// it as a gzip-compressed layer.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		name := strings.TrimPrefix(f.name, "/")
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range sortedKeys(dirs) {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write directory %s: %w", d, err)
		}
	}
	for _, f := range files {
		name := strings.TrimPrefix(f.name, "/")
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// BuildInfo is the build info the binary carries, as runtime/debug reports it.
func (b GoBinary) BuildInfo() *debug.BuildInfo {
	info := &debug.BuildInfo{
		GoVersion: b.GoVersion,
		Path:      b.Main + "/cmd/" + path.Base(b.Path),
		Main:      debug.Module{Path: b.Main, Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"},
			{Key: "GOARCH", Value: "amd64"},
		},
	}
	for _, d := range b.Deps {
		info.Deps = append(info.Deps, &debug.Module{Path: d.Path, Version: d.Version})
	}
	return info
}
