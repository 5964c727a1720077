package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/deploy/images/ociimage"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/scanner/app"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

// buildBinaries builds every binary of Binaries as `make images` does:
// static, for linux, without paths of this machine in them.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pkgs := []string{"./cmd/rampart"}
	for _, b := range Binaries[1:] {
		pkgs = append(pkgs, "./services/"+b.Binary+"/cmd/"+b.Binary)
	}
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return dir
}

// TestImages builds the images of Rampart's own binaries twice, checks the
// two layouts are identical, and has the scanner scan every image with
// Trivy: each must pass its own gate.
func TestImages(t *testing.T) {
	bin := buildBinaries(t)
	var layouts [2]string
	for i := range layouts {
		layouts[i] = filepath.Join(t.TempDir(), "oci")
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-bin", bin, "-out", layouts[i], "-tag", "test", "-revision", "abc"}, &out); err != nil {
			t.Fatalf("images: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "rampart-scanner ") {
			t.Errorf("output names no scanner image:\n%s", out.String())
		}
	}
	index := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if a, b := index(layouts[0]), index(layouts[1]); !bytes.Equal(a, b) {
		t.Fatalf("two builds of the same binaries differ:\n%s\n%s", a, b)
	}

	p, err := layout.FromPath(layouts[0])
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(Binaries) {
		t.Fatalf("%d images in the layout, want %d", len(im.Manifests), len(Binaries))
	}

	s := startScanner(t)
	for _, desc := range im.Manifests {
		name, _, _ := strings.Cut(desc.Annotations[ociimage.RefNameAnnotation], ":")
		t.Run(name, func(t *testing.T) {
			img, err := p.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			pushed, err := s.reg.Push(t.Context(), "rampartci/"+name, "test", img)
			if err != nil {
				t.Fatal(err)
			}
			put := <-s.puts
			v := s.verdict(t, put, pushed.Digest)
			if v.Outcome != events.OutcomePass {
				t.Fatalf("the scanner's gate blocks Rampart's own %s image: %s %q %+v", name, v.Outcome, v.Reason, v.Findings)
			}
			t.Logf("%s %s: %s, %d findings, DB %s", name, pushed.Digest, v.Outcome, len(v.Findings), v.DBVersion)
		})
	}
}

// scanner is the real scanner service on a real JetStream, with the
// fixture vulnerability DB, and an in-memory registry to push to.
type scanner struct {
	url  string
	b    *bus.Bus
	reg  *sampleimage.Registry
	puts chan sampleimage.ManifestPut
	pub  ed25519.PublicKey
}

const registryToken = "registry-token"

func startScanner(t *testing.T) *scanner {
	t.Helper()
	s := &scanner{puts: make(chan sampleimage.ManifestPut, len(Binaries))}
	s.reg = sampleimage.StartRegistry(sampleimage.RegistryOptions{OnManifestPut: func(p sampleimage.ManifestPut) { s.puts <- p }})
	t.Cleanup(s.reg.Close)
	ns := natstest.Server(t, "")
	s.b = natstest.Bus(t, ns)
	dir := t.TempDir()
	token := filepath.Join(dir, "registry.token")
	if err := os.WriteFile(token, []byte(registryToken), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := app.DefaultOptions()
	opts.CacheDir = filepath.Join(dir, "cache")
	opts.FixtureDB = true
	opts.VerdictKeyFile = filepath.Join(dir, "verdict.key")
	opts.RegistryToken = policy.Secret{File: token}
	opts.PullAttempts = 1
	a, err := app.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sopts := service.DefaultOptions("rampart-scanner-images-test")
	sopts.NATSURL, sopts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	sopts.NATS = natstest.Identity(t, ns, "scanner")
	h, err := service.Start(t.Context(), sopts, slog.New(slog.DiscardHandler), a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	s.url = "http://" + h.HTTPAddr()
	if s.pub, err = events.LoadVerdictPublicKey(opts.VerdictKeyFile + ".pub"); err != nil {
		t.Fatal(err)
	}
	return s
}

// verdict posts the registry's notification of put to the scanner's
// /hooks/registry and waits for the signed verdict on digest.
func (s *scanner) verdict(t *testing.T, put sampleimage.ManifestPut, digest string) events.Scan {
	t.Helper()
	body, err := put.DistributionEnvelope(s.reg.Host, "push-"+digest[len("sha256:"):19], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/hooks/registry", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	req.Header.Set("Authorization", "Bearer "+registryToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("/hooks/registry: %d %s", resp.StatusCode, msg)
	}
	var v events.Scan
	natstest.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		found, err := s.findVerdict(t.Context(), digest)
		if err != nil {
			return err
		}
		v = found
		return nil
	})
	return v
}

func (s *scanner) findVerdict(ctx context.Context, digest string) (events.Scan, error) {
	st, err := s.b.JetStream().Stream(ctx, bus.StreamName)
	if err != nil {
		return events.Scan{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return events.Scan{}, err
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			return events.Scan{}, err
		}
		ev, err := events.FromMsg(msg.Header, msg.Data)
		if err != nil || ev.Type() != events.TypeTestSuiteFinished {
			continue
		}
		v, err := events.VerifyScan(ev, s.pub)
		if err != nil {
			return events.Scan{}, fmt.Errorf("verdict %s does not verify: %w", ev.ID(), err)
		}
		if strings.Contains(v.Target, digest[len("sha256:"):]) {
			return v, nil
		}
	}
	return events.Scan{}, fmt.Errorf("no verdict on %s yet", digest)
}
