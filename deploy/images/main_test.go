package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/deploy/images/ociimage"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

// buildBinaries builds every binary of Binaries, and this command, as
// `make images` does: static, for linux, without paths of this machine in
// them. They run here as they would in their images.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pkgs := []string{"./cmd/rampart", "./deploy/images"}
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

// TestImages builds Rampart's binaries, packs their images twice with this
// command (built like them, so the packing runs at full speed rather than
// under the race detector), checks the two layouts are identical, and has
// Rampart's own scanner binary scan every image with Trivy: each must pass
// its own gate.
func TestImages(t *testing.T) {
	bin := buildBinaries(t)
	var layouts [2]string
	for i := range layouts {
		layouts[i] = filepath.Join(t.TempDir(), "oci")
		out, err := exec.CommandContext(t.Context(), filepath.Join(bin, "images"),
			"-bin", bin, "-out", layouts[i], "-tag", "test", "-revision", "abc").CombinedOutput()
		if err != nil {
			t.Fatalf("images: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "rampart-scanner ") {
			t.Errorf("output names no scanner image:\n%s", out)
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

	images, err := ociimage.ReadLayout(layouts[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != len(Binaries) {
		t.Fatalf("%d images in the layout, want %d", len(images), len(Binaries))
	}

	s := startScanner(t, filepath.Join(bin, "scanner"))
	for _, n := range images {
		name, _, _ := strings.Cut(n.Ref, ":")
		t.Run(name, func(t *testing.T) {
			pushed, err := s.reg.Push(t.Context(), "rampartci/"+name, "test", n.Image)
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

// scanner is Rampart's scanner binary as a process on a real JetStream,
// with the fixture vulnerability DB, and an in-memory registry to push to.
type scanner struct {
	url  string
	b    *bus.Bus
	reg  *sampleimage.Registry
	puts chan sampleimage.ManifestPut
	pub  ed25519.PublicKey
}

const registryToken = "registry-token"

func startScanner(t *testing.T, binary string) *scanner {
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
	key := filepath.Join(dir, "verdict.key")
	cmd := exec.Command(binary, "--nats", ns.ClientURL(), "--nats-nkey", natstest.Identity(t, ns, "scanner").NKeyFile,
		"--http", "127.0.0.1:0", "--fixture-db", "--cache-dir", filepath.Join(dir, "cache"), "--verdict-key", key,
		"--registry-webhook-token", "file:"+token, "--pull-attempts", "1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	// The host logs one JSON line {"msg":"serving","http":ADDR} once it
	// listens; the rest of its log goes to the test's.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, HTTP string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				addr <- line.HTTP
			}
		}
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-time.After(2 * time.Minute):
		t.Fatal("the scanner did not start serving within 2 minutes")
	}
	if s.pub, err = events.LoadVerdictPublicKey(key + ".pub"); err != nil {
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
