package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/scanner/app"
	"github.com/rampartci/rampart/services/scanner/internal/hooks"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

// Trivy's DB is process-global: every scanner in this binary shares one
// cache directory.
var cacheDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "scanner-app-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(natstest.LeakOptions...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const (
	webhookToken = "registry-webhook-token"
	adminToken   = "admin-token"
)

// mesh is a scanner on an embedded JetStream, with an in-memory registry
// whose manifest pushes come out as notifications on puts.
type mesh struct {
	url  string // the scanner's HTTP address
	b    *bus.Bus
	reg  *sampleimage.Registry
	puts chan sampleimage.ManifestPut
	pub  ed25519.PublicKey
}

func secretFile(t *testing.T, dir, name, v string) policy.Secret {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return policy.Secret{File: p}
}

func start(t *testing.T) *mesh {
	t.Helper()
	m := &mesh{puts: make(chan sampleimage.ManifestPut, 16)}
	m.reg = sampleimage.StartRegistry(sampleimage.RegistryOptions{OnManifestPut: func(p sampleimage.ManifestPut) { m.puts <- p }})
	t.Cleanup(m.reg.Close)

	ns := natstest.Server(t, "")
	m.b = natstest.Bus(t, ns)
	dir := t.TempDir()
	opts := app.DefaultOptions()
	opts.CacheDir = cacheDir
	opts.FixtureDB = true
	opts.VerdictKeyFile = filepath.Join(dir, "verdict.key")
	opts.RegistryToken = secretFile(t, dir, "registry.token", webhookToken)
	opts.AdminToken = secretFile(t, dir, "admin.token", adminToken)
	opts.PullAttempts = 1
	opts.Policy = policy.StoreOf(&policy.Policy{Version: 1, Apps: []policy.App{{Name: "shop", Image: m.reg.Host + "/team/app", Environment: "production"}}})
	a, err := app.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sopts := service.DefaultOptions("rampart-scanner-test")
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
	m.url = "http://" + h.HTTPAddr()
	if m.pub, err = events.LoadVerdictPublicKey(opts.VerdictKeyFile + ".pub"); err != nil {
		t.Fatal(err)
	}
	return m
}

// push builds and pushes spec as team/app:tag and returns the manifest put
// the registry notified.
func (m *mesh) push(t *testing.T, tag string, spec sampleimage.Image) sampleimage.ManifestPut {
	t.Helper()
	if _, err := m.reg.BuildAndPush(t.Context(), "team/app", tag, spec); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-m.puts:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the registry notified no manifest put")
	}
	return sampleimage.ManifestPut{}
}

func (m *mesh) post(t *testing.T, path, contentType, auth string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// notify posts the registry's Distribution notification of p (registry
// event id) and returns the id of the artifact event it becomes.
func (m *mesh) notify(t *testing.T, p sampleimage.ManifestPut, id string) string {
	t.Helper()
	body := mustEnvelope(t, p, m.reg.Host, id)
	pushes, err := hooks.ParseDistribution(hooks.DistributionMediaType, body)
	if err != nil {
		t.Fatal(err)
	}
	if code, resp := m.post(t, "/hooks/registry", hooks.DistributionMediaType, "Bearer "+webhookToken, body); code != http.StatusAccepted {
		t.Fatalf("/hooks/registry: %d %s", code, resp)
	}
	return pushes[0].ID
}

// events returns the stored events of typ.
func (m *mesh) events(t *testing.T, typ string) []cloudevents.Event {
	t.Helper()
	ctx := context.Background()
	s, err := m.b.JetStream().Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []cloudevents.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.FromMsg(msg.Header, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if typ == "" || ev.Type() == typ {
			out = append(out, ev)
		}
	}
	return out
}

// verdictFor waits for the verdict caused by the artifact event
// artifactID, and checks its signature with the scanner's public key.
func (m *mesh) verdictFor(t *testing.T, artifactID string) events.Scan {
	t.Helper()
	var s events.Scan
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		for _, ev := range m.events(t, events.TypeTestSuiteFinished) {
			cd, err := events.Parse(ev)
			if err != nil || cd.CausedBy() != artifactID {
				continue
			}
			if s, err = events.VerifyScan(ev, m.pub); err != nil {
				t.Fatalf("verdict %s does not verify with the scanner's public key: %v", ev.ID(), err)
			}
			return nil
		}
		return fmt.Errorf("no verdict for artifact event %s yet", artifactID)
	})
	return s
}

func metric(t *testing.T, m *mesh, name string) float64 {
	t.Helper()
	resp, err := http.Get(m.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		// name may end inside the labels: rampart_x_total{kind="image"
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") || (strings.Contains(name, "{") && strings.HasPrefix(line, name)) {
			var v float64
			fields := strings.Fields(line)
			fmt.Sscan(fields[len(fields)-1], &v)
			sum += v
		}
	}
	return sum
}

func TestEndToEnd(t *testing.T) {
	m := start(t)

	// The registry's notification of each push is posted to /hooks/registry,
	// as a Distribution endpoint would.
	vulnerable := m.push(t, "v1", sampleimage.VulnerableAlpine())
	v := m.verdictFor(t, m.notify(t, vulnerable, "push-vulnerable"))
	if v.Outcome != events.OutcomeBlocked || !strings.Contains(v.Reason, sampleimage.CriticalOpenSSL) || v.Findings[0].ID != sampleimage.CriticalOpenSSL {
		t.Errorf("vulnerable image: %s %q", v.Outcome, v.Reason)
	}
	if v.Environment != "production" || v.TargetKind != "image" || !strings.Contains(v.Target, vulnerable.Digest[len("sha256:"):]) {
		t.Errorf("verdict %+v", v)
	}

	clean := m.push(t, "v2", sampleimage.CleanAlpine())
	c := m.verdictFor(t, m.notify(t, clean, "push-clean"))
	if c.Outcome != events.OutcomePass {
		t.Errorf("clean image: %s %q", c.Outcome, c.Reason)
	}
	if got := metric(t, m, "rampart_scanner_scans_total"); got != 2 {
		t.Errorf("Trivy image scans = %v, want 2", got)
	}

	t.Run("same digest pushed again is served from the cache", func(t *testing.T) {
		again := m.push(t, "v2-again", sampleimage.CleanAlpine())
		if again.Digest != clean.Digest {
			t.Fatalf("digest changed: %s", again.Digest)
		}
		if s := m.verdictFor(t, m.notify(t, again, "push-clean-again")); s.Outcome != events.OutcomePass || !strings.Contains(s.Target, "v2-again") {
			t.Errorf("cached verdict %+v", s)
		}
		if got := metric(t, m, "rampart_scanner_scans_total"); got != 2 {
			t.Errorf("Trivy image scans = %v, want still 2", got)
		}
		if got := metric(t, m, "rampart_scanner_cache_hits_total"); got != 1 {
			t.Errorf("cache hits = %v, want 1", got)
		}
	})

	t.Run("Harbor payload", func(t *testing.T) {
		body := fmt.Sprintf(`{"type":"PUSH_ARTIFACT","occur_at":%d,"operator":"robot$ci","event_data":{"resources":[{"digest":%q,"tag":"harbor","resource_url":"%s/team/app:harbor"}],"repository":{"name":"app","namespace":"team","repo_full_name":"team/app","repo_type":"private"}}}`,
			time.Now().Unix(), vulnerable.Digest, m.reg.Host)
		pushes, err := hooks.ParseHarbor("application/json", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if code, resp := m.post(t, "/hooks/registry", "application/json", "Bearer "+webhookToken, []byte(body)); code != http.StatusAccepted {
			t.Fatalf("harbor: %d %s", code, resp)
		}
		if s := m.verdictFor(t, pushes[0].ID); s.Outcome != events.OutcomeBlocked {
			t.Errorf("harbor push verdict %s", s.Outcome)
		}
	})

	t.Run("bad auth is 401 and publishes nothing", func(t *testing.T) {
		before := len(m.events(t, ""))
		body := mustEnvelope(t, clean, m.reg.Host, "push-forged")
		for _, auth := range []string{"", "Bearer wrong", "Basic Y2k6Y2k="} {
			if code, _ := m.post(t, "/hooks/registry", hooks.DistributionMediaType, auth, body); code != http.StatusUnauthorized {
				t.Errorf("auth %q: %d, want 401", auth, code)
			}
		}
		if after := len(m.events(t, "")); after != before {
			t.Errorf("%d events published by refused requests", after-before)
		}
		if got := metric(t, m, `rampart_scanner_webhook_requests_total{code="401",hook="registry"}`); got != 3 {
			t.Errorf("401 count %v", got)
		}
	})

	t.Run("an image that cannot be pulled is an error verdict", func(t *testing.T) {
		missing := clean
		missing.Digest = "sha256:" + strings.Repeat("e", 64)
		missing.Reference = missing.Digest
		if s := m.verdictFor(t, m.notify(t, missing, "push-missing")); s.Outcome != events.OutcomeError || !strings.Contains(s.Reason, "pulled") {
			t.Errorf("unpullable image verdict %s %q", s.Outcome, s.Reason)
		}
	})

	t.Run("zero-day re-scan of the live release", func(t *testing.T) {
		// The deployer made the clean image live.
		live := m.verdictFor(t, m.notify(t, clean, "push-clean")).Target
		rel, err := events.NewReleaseCompleted(events.Meta{ID: "release-1", Source: "/rampart/deployer", App: "shop"},
			events.Release{RolloutID: "shop-1", App: "shop", Environment: "production", ArtifactID: live})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.b.Publish(t.Context(), rel); err != nil {
			t.Fatal(err)
		}
		// A DB update adds a Critical advisory for the clean image's musl.
		if err := vulndb.Build(cacheDir, app.FixtureDBTime.Add(24*time.Hour), vulndb.Fixtures(), zeroDay); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// Back to the fixture DB for whatever runs next in this process.
			if err := vulndb.Build(cacheDir, app.FixtureDBTime); err != nil {
				t.Error(err)
			}
			code, body := m.post(t, "/scanner/rescan", "application/json", "Bearer "+adminToken, nil)
			if code != http.StatusOK {
				t.Errorf("restoring the fixture DB: %d %s", code, body)
			}
		})
		scans := metric(t, m, `rampart_scanner_scans_total{kind="image"`)
		var anomalies []string
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			// The release event may still be on its way to the scanner.
			code, body := m.post(t, "/scanner/rescan", "application/json", "Bearer "+adminToken, nil)
			if code != http.StatusOK {
				t.Fatalf("re-scan: %d %s", code, body)
			}
			var rep struct{ Anomalies []string }
			if err := json.Unmarshal([]byte(body), &rep); err != nil {
				t.Fatal(err)
			}
			if anomalies = rep.Anomalies; len(anomalies) == 0 {
				return fmt.Errorf("no anomaly yet: %s", body)
			}
			return nil
		})
		if len(anomalies) != 1 || anomalies[0] != live {
			t.Errorf("anomalies %v, want the live release %s", anomalies, live)
		}
		if got := metric(t, m, `rampart_scanner_scans_total{kind="image"`); got != scans {
			t.Errorf("images scanned during the re-scan: %v, want none", got-scans)
		}
		evs := m.events(t, events.TypeIncidentDetected)
		if len(evs) != 1 {
			t.Fatalf("%d anomalies published", len(evs))
		}
		if a, err := events.AnomalyOf(evs[0]); err != nil || a.Target != events.TargetRelease || !strings.Contains(a.Description, "CVE-2026-0001") {
			t.Errorf("anomaly %+v %v", a, err)
		}
	})

	t.Run("re-scan trigger", func(t *testing.T) {
		if code, _ := m.post(t, "/scanner/rescan", "application/json", "Bearer wrong", nil); code != http.StatusUnauthorized {
			t.Errorf("re-scan with a wrong token: %d", code)
		}
		code, body := m.post(t, "/scanner/rescan", "application/json", "Bearer "+adminToken, nil)
		if code != http.StatusOK {
			t.Fatalf("re-scan: %d %s", code, body)
		}
		var rep struct {
			DBVersion string
			Checked   int
		}
		if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.DBVersion == "" {
			t.Errorf("re-scan report %s: %v", body, err)
		}
	})
}

// zeroDay is a DB update with a Critical advisory for musl, which every
// preset image carries.
var zeroDay = fstest.MapFS{"zz-zero-day.yaml": {Data: []byte(`
- bucket: alpine 3.22
  pairs:
    - bucket: musl
      pairs:
        - key: CVE-2026-0001
          value:
            FixedVersion: 1.2.5-r99
- bucket: vulnerability
  pairs:
    - key: CVE-2026-0001
      value:
        Title: "musl: fixture zero-day"
        Severity: CRITICAL
`)}}

func mustEnvelope(t *testing.T, p sampleimage.ManifestPut, host, id string) []byte {
	t.Helper()
	b, err := p.DistributionEnvelope(host, id, time.Unix(1786612364, 0))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
