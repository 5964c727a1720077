// Command images builds the OCI images of Rampart's binaries: one per
// service (rampart-<service>) and one of the CLI (rampart), into an OCI
// image layout, and optionally pushes them. `make images` builds the static
// binaries first and runs it.
//
//	go run ./deploy/images -bin bin/linux -out bin/images -tag v0.1.0 [-push ghcr.io/acme]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rampartci/rampart/deploy/images/ociimage"
)

// Binaries are the binaries that get an image, by image name.
var Binaries = []struct{ Image, Binary string }{
	{"rampart", "rampart"},
	{"rampart-scanner", "scanner"},
	{"rampart-deployer", "deployer"},
	{"rampart-watcher", "watcher"},
	{"rampart-notifier", "notifier"},
	{"rampart-ledger", "ledger"},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	bin := fs.String("bin", "bin/linux", "`DIR` of the static linux binaries")
	dir := fs.String("out", "bin/images", "`DIR` of the OCI image layout to write")
	tag := fs.String("tag", "dev", "the images' `TAG`")
	push := fs.String("push", "", "`REGISTRY` prefix to push to as well, e.g. ghcr.io/acme (credentials from the Docker config)")
	insecure := fs.Bool("insecure", false, "push over plain HTTP")
	certs := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "`FILE` of CA certificates copied into every image (empty: none)")
	revision := fs.String("revision", "", "the source `REVISION`, labelled on every image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	created, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	labels := map[string]string{
		"org.opencontainers.image.source":  "https://github.com/rampartci/rampart",
		"org.opencontainers.image.version": *tag,
		"org.opencontainers.image.vendor":  "Rampart",
	}
	if *revision != "" {
		labels["org.opencontainers.image.revision"] = *revision
	}
	images := map[string]v1.Image{}
	var names []string
	for _, b := range Binaries {
		img, err := ociimage.Build(ociimage.Spec{
			Name: b.Image, Binary: filepath.Join(*bin, b.Binary), CACerts: *certs, Created: created, Labels: labels,
		})
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-18s %s\n", b.Image, d)
		images[b.Image] = img
		names = append(names, b.Image)
	}
	if err := ociimage.WriteLayout(*dir, *tag, names, images); err != nil {
		return err
	}
	fmt.Fprintf(out, "OCI layout written to %s\n", *dir)
	if *push == "" {
		return nil
	}
	for _, n := range names {
		ref, err := ociimage.Push(ctx, strings.TrimSuffix(*push, "/")+"/"+n+":"+*tag, images[n], *insecure)
		if err != nil {
			return fmt.Errorf("push %s: %w", n, err)
		}
		fmt.Fprintf(out, "pushed %s\n", ref)
	}
	return nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org): the
// images' creation time. Unset: the Unix epoch.
func sourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, errors.New("SOURCE_DATE_EPOCH must be a non-negative number of seconds")
	}
	return time.Unix(s, 0), nil
}
