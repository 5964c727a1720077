package ingress_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/scanner/internal/hooks"
	"github.com/rampartci/rampart/services/scanner/internal/ingress"
)

const (
	regToken     = "registry-token"
	githubSecret = "github-secret"
	gitlabToken  = "gitlab-token"
)

type fixture struct {
	url string
	b   *bus.Bus
	reg *prometheus.Registry
}

func setup(t *testing.T, cfg ingress.Config) fixture {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	reg := prometheus.NewRegistry()
	h, err := ingress.New(cfg, b, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return fixture{url: srv.URL, b: b, reg: reg}
}

// secretFile writes v to a file and returns its reference.
func secretFile(t *testing.T, v string) policy.Secret {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return policy.Secret{File: p}
}

func defaultConfig(t *testing.T) ingress.Config {
	return ingress.Config{
		RegistryToken: secretFile(t, regToken),
		GitHubSecret:  secretFile(t, githubSecret),
		GitLabToken:   secretFile(t, gitlabToken),
	}
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "hooks", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, url string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stored returns every event in the RAMPART stream.
func stored(t *testing.T, b *bus.Bus) []cloudevents.Event {
	t.Helper()
	ctx := context.Background()
	s, err := b.JetStream().Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var evs []cloudevents.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.FromMsg(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestRegistryPushes(t *testing.T) {
	f := setup(t, defaultConfig(t))
	dist := testdata(t, "distribution_push.json")
	distHeader := header("Content-Type", hooks.DistributionMediaType, "Authorization", "Bearer "+regToken)

	code, body := post(t, f.url+"/hooks/registry", distHeader, dist)
	if code != http.StatusAccepted {
		t.Fatalf("status %d: %s", code, body)
	}
	// The same notification again (a registry retry) is the same event.
	if code, body := post(t, f.url+"/hooks/registry", distHeader, dist); code != http.StatusAccepted {
		t.Fatalf("redelivery: status %d: %s", code, body)
	}
	harbor := testdata(t, "harbor_push_default.json")
	if code, body := post(t, f.url+"/hooks/registry", header("Content-Type", "application/json", "Authorization", "Bearer "+regToken), harbor); code != http.StatusAccepted {
		t.Fatalf("harbor: status %d: %s", code, body)
	}

	pushes, err := hooks.ParseDistribution(hooks.DistributionMediaType, dist)
	if err != nil {
		t.Fatal(err)
	}
	hpushes, err := hooks.ParseHarbor("application/json", harbor)
	if err != nil {
		t.Fatal(err)
	}
	want := append(pushes, hpushes...)
	evs := stored(t, f.b)
	if len(evs) != len(want) {
		t.Fatalf("stored %d events, want %d (one per manifest push, redelivery dropped)", len(evs), len(want))
	}
	chains := map[string]bool{}
	for i, ev := range evs {
		a, err := events.ArtifactOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		p := want[i]
		oci, err := events.NewOCI(p.Registry+"/"+p.Repository, p.Digest, p.Tag)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID() != p.ID || a.Purl != oci.String() || a.Digest != p.Digest || a.Tag != p.Tag {
			t.Errorf("event %d = %s %+v, want id %s purl %s", i, ev.ID(), a, p.ID, oci)
		}
		// internal/hooks and pkg/events name an image the same way.
		if p.PURL() != oci.String() {
			t.Errorf("hooks purl %s != events purl %s", p.PURL(), oci)
		}
		chain := events.ChainID(ev)
		if chain != ingress.ChainID(p.ID) || chains[chain] {
			t.Errorf("event %d chain %q: want a new chain derived from the event id", i, chain)
		}
		chains[chain] = true
		if got := events.SubjectOf(ev); got != "rampart.artifact._" {
			t.Errorf("subject %s", got)
		}
	}
	if got := counterValue(t, f.reg, "registry", "202"); got != 3 {
		t.Errorf("webhook requests registry/202 = %v, want 3", got)
	}
}

// counterValue reads the webhook counter for hook and code.
func counterValue(t *testing.T, reg *prometheus.Registry, hook, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rampart_scanner_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["hook"] == hook && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestRegistryFailuresPublishNothing(t *testing.T) {
	f := setup(t, defaultConfig(t))
	dist := testdata(t, "distribution_push.json")
	auth := "Bearer " + regToken
	big := bytes.Repeat([]byte(" "), hooks.MaxRegistryBody+1)
	layersOnly := []byte(`{"events":[{"id":"1","action":"push","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:c3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d","repository":"team/app"},"request":{"host":"r.example.com"}}]}`)
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		want    int
		wantMsg string
	}{
		{"no auth", header("Content-Type", hooks.DistributionMediaType), dist, http.StatusUnauthorized, "authentication failed"},
		{"wrong token", header("Content-Type", hooks.DistributionMediaType, "Authorization", "Bearer nope"), dist, http.StatusUnauthorized, "authentication failed"},
		{"basic instead of bearer", header("Content-Type", hooks.DistributionMediaType, "Authorization", "Basic Y2k6cGFzcw=="), dist, http.StatusUnauthorized, ""},
		{"wrong media type", header("Content-Type", "text/plain", "Authorization", auth), dist, http.StatusUnsupportedMediaType, "text/plain"},
		{"malformed", header("Content-Type", hooks.DistributionMediaType, "Authorization", auth), []byte(`{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:nothex","repository":"team/app"}}]}`), http.StatusBadRequest, "digest"},
		{"not JSON", header("Content-Type", hooks.DistributionMediaType, "Authorization", auth), []byte(`{"events":`), http.StatusBadRequest, "truncated"},
		{"oversized", header("Content-Type", hooks.DistributionMediaType, "Authorization", auth), big, http.StatusRequestEntityTooLarge, "too large"},
		{"layers only", header("Content-Type", hooks.DistributionMediaType, "Authorization", auth), layersOnly, http.StatusAccepted, "ignored"},
		{"harbor other event", header("Content-Type", "application/json", "Authorization", auth), []byte(`{"type":"PULL_ARTIFACT","event_data":{}}`), http.StatusAccepted, "PULL_ARTIFACT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, f.url+"/hooks/registry", tt.h, tt.body)
			if code != tt.want || !strings.Contains(body, tt.wantMsg) {
				t.Errorf("status %d body %s, want %d containing %q", code, body, tt.want, tt.wantMsg)
			}
		})
	}
	if evs := stored(t, f.b); len(evs) != 0 {
		t.Errorf("%d events published from failed or ignored requests", len(evs))
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	cfg := ingress.Config{RegistryUser: "registry", RegistryPassword: secretFile(t, "pw")}
	f := setup(t, cfg)
	req := func(user, pass string) int {
		r, _ := http.NewRequest(http.MethodPost, f.url+"/hooks/registry", bytes.NewReader(testdata(t, "distribution_push.json")))
		r.Header.Set("Content-Type", hooks.DistributionMediaType)
		r.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := req("registry", "wrong"); got != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", got)
	}
	if got := req("registry", "pw"); got != http.StatusAccepted {
		t.Errorf("right password: %d", got)
	}
}

// Harbor sends a policy's auth_header verbatim as the Authorization header.
func TestRegistryHarborAuthHeader(t *testing.T) {
	f := setup(t, ingress.Config{RegistryHeader: secretFile(t, "s3cret-value")})
	for _, tt := range []struct {
		header string
		want   int
	}{{"s3cret-value", http.StatusAccepted}, {"s3cret-valu", http.StatusUnauthorized}, {"Bearer s3cret-value", http.StatusUnauthorized}} {
		if code, body := post(t, f.url+"/hooks/registry", header("Content-Type", hooks.DistributionMediaType, "Authorization", tt.header),
			testdata(t, "distribution_push.json")); code != tt.want {
			t.Errorf("Authorization %q: %d %s, want %d", tt.header, code, body, tt.want)
		}
	}
}

func TestNoCredentialConfiguredRefuses(t *testing.T) {
	f := setup(t, ingress.Config{})
	code, _ := post(t, f.url+"/hooks/registry", header("Content-Type", hooks.DistributionMediaType, "Authorization", "Bearer anything"), testdata(t, "distribution_push.json"))
	if code != http.StatusUnauthorized {
		t.Errorf("registry without a configured credential: %d", code)
	}
	body := testdata(t, "github_push.json")
	code, _ = post(t, f.url+"/hooks/git", header("Content-Type", "application/json", hooks.GitHubEventHeader, "push", hooks.GitHubSignatureHeader, sign("", body)), body)
	if code != http.StatusUnauthorized {
		t.Errorf("GitHub without a configured secret: %d", code)
	}
}

func TestMissingSecretFailsNew(t *testing.T) {
	_, err := ingress.New(ingress.Config{GitHubSecret: policy.Secret{Env: "RAMPART_TEST_UNSET_SECRET"}}, natstest.Bus(t, natstest.Server(t, "")), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "GitHub") {
		t.Errorf("New with an unset secret: %v", err)
	}
}

func TestGitHooks(t *testing.T) {
	f := setup(t, defaultConfig(t))
	ghPush := testdata(t, "github_push.json")
	ghPR := testdata(t, "github_pull_request.json")
	glPush := testdata(t, "gitlab_push.json")

	ok := []struct {
		name string
		h    http.Header
		body []byte
	}{
		{"github push", header("Content-Type", "application/json", hooks.GitHubEventHeader, "push", hooks.GitHubSignatureHeader, sign(githubSecret, ghPush)), ghPush},
		{"github pull request", header("Content-Type", "application/json", hooks.GitHubEventHeader, "pull_request", hooks.GitHubSignatureHeader, sign(githubSecret, ghPR)), ghPR},
		{"gitlab push", header("Content-Type", "application/json", hooks.GitLabEventHeader, "Push Hook", hooks.GitLabTokenHeader, gitlabToken), glPush},
		{"github push redelivered", header("Content-Type", "application/json", hooks.GitHubEventHeader, "push", hooks.GitHubSignatureHeader, sign(githubSecret, ghPush)), ghPush},
	}
	for _, tt := range ok {
		if code, body := post(t, f.url+"/hooks/git", tt.h, tt.body); code != http.StatusAccepted {
			t.Errorf("%s: status %d: %s", tt.name, code, body)
		}
	}
	bad := []struct {
		name string
		h    http.Header
		body []byte
		want int
	}{
		{"github bad signature", header("Content-Type", "application/json", hooks.GitHubEventHeader, "push", hooks.GitHubSignatureHeader, sign("wrong", ghPush)), ghPush, http.StatusUnauthorized},
		{"github unsigned", header("Content-Type", "application/json", hooks.GitHubEventHeader, "push"), ghPush, http.StatusUnauthorized},
		{"gitlab wrong token", header("Content-Type", "application/json", hooks.GitLabEventHeader, "Push Hook", hooks.GitLabTokenHeader, "nope"), glPush, http.StatusUnauthorized},
		{"github xml", header("Content-Type", "application/xml", hooks.GitHubEventHeader, "push", hooks.GitHubSignatureHeader, sign(githubSecret, ghPush)), ghPush, http.StatusUnsupportedMediaType},
		{"gitlab form", header("Content-Type", "application/x-www-form-urlencoded", hooks.GitLabEventHeader, "Push Hook", hooks.GitLabTokenHeader, gitlabToken), glPush, http.StatusUnsupportedMediaType},
		{"unknown provider", header("Content-Type", "application/json"), ghPush, http.StatusBadRequest},
		{"github issue event", header("Content-Type", "application/json", hooks.GitHubEventHeader, "issues", hooks.GitHubSignatureHeader, sign(githubSecret, ghPush)), ghPush, http.StatusBadRequest},
		{"github ping", header("Content-Type", "application/json", hooks.GitHubEventHeader, "ping", hooks.GitHubSignatureHeader, sign(githubSecret, []byte(`{}`))), []byte(`{}`), http.StatusAccepted},
		{"oversized", header("Content-Type", "application/json", hooks.GitHubEventHeader, "push"), bytes.Repeat([]byte("x"), hooks.MaxGitBody+1), http.StatusRequestEntityTooLarge},
	}
	for _, tt := range bad {
		if code, body := post(t, f.url+"/hooks/git", tt.h, tt.body); code != tt.want {
			t.Errorf("%s: status %d, want %d: %s", tt.name, code, tt.want, body)
		}
	}

	evs := stored(t, f.b)
	if len(evs) != 3 {
		t.Fatalf("stored %d commit events, want 3 (the redelivery dropped, failures publish nothing)", len(evs))
	}
	var got []string
	for _, ev := range evs {
		c, err := events.CommitOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		if events.ChainID(ev) != ingress.ChainID(ev.ID()) {
			t.Errorf("commit %s: chain %s not derived from its id", ev.ID(), events.ChainID(ev))
		}
		got = append(got, fmt.Sprintf("%s %s %s pr=%d", ev.Type(), c.Repository, c.SHA[:7], c.PullRequest))
	}
	for i, prefix := range []string{events.TypeChangeMerged, events.TypeChangeCreated, events.TypeChangeMerged} {
		if !strings.HasPrefix(got[i], prefix) {
			t.Errorf("event %d = %s, want type %s", i, got[i], prefix)
		}
	}
	for _, g := range got {
		if !strings.Contains(g, ".com/") {
			t.Errorf("commit repository without its host: %s", g)
		}
	}
	t.Log(strings.Join(got, "\n"))
}

// A bus that is down answers 503, so the provider retries.
func TestPublishFailureIs503(t *testing.T) {
	h, err := ingress.New(defaultConfig(t), failingPublisher{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	code, body := post(t, srv.URL+"/hooks/registry", header("Content-Type", hooks.DistributionMediaType, "Authorization", "Bearer "+regToken), testdata(t, "distribution_push.json"))
	if code != http.StatusServiceUnavailable {
		t.Errorf("status %d: %s", code, body)
	}
	var r struct{ Error string }
	_ = json.Unmarshal([]byte(body), &r)
	if r.Error == "" {
		t.Errorf("no reason in %s", body)
	}
}

type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, cloudevents.Event) (*jetstream.PubAck, error) {
	return nil, fmt.Errorf("nats: connection closed")
}

// harborPush is a Harbor Default-format delivery of n artifacts of
// team/app, pushed by operator.
func harborPush(n int, operator string) []byte {
	resources := make([]map[string]string, n)
	for i := range resources {
		d := fmt.Sprintf("sha256:%064x", i+1)
		resources[i] = map[string]string{"digest": d, "tag": fmt.Sprintf("v%d", i), "resource_url": fmt.Sprintf("harbor.example.com/team/app:v%d", i)}
	}
	b, _ := json.Marshal(map[string]any{"type": "PUSH_ARTIFACT", "occur_at": 1786612364, "operator": operator,
		"event_data": map[string]any{"resources": resources, "repository": map[string]string{"repo_full_name": "team/app"}}})
	return b
}

// One delivery with more artifacts than the cap is refused whole: 413 with
// the limit and the flag, nothing published (each would be a pull and a
// scan).
func TestRegistryDeliveryCap(t *testing.T) {
	f := setup(t, defaultConfig(t))
	h := header("Content-Type", "application/json", "Authorization", "Bearer "+regToken)
	for _, n := range []int{ingress.DefaultMaxPushes + 1, 1000} {
		code, body := post(t, f.url+"/hooks/registry", h, harborPush(n, "ci"))
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, fmt.Sprintf("%d artifacts in one delivery, over the limit of 100", n)) ||
			!strings.Contains(body, "--max-pushes-per-delivery") {
			t.Fatalf("%d artifacts: %d %s", n, code, body)
		}
	}
	if evs := stored(t, f.b); len(evs) != 0 {
		t.Fatalf("%d events published from refused deliveries", len(evs))
	}
	if code, body := post(t, f.url+"/hooks/registry", h, harborPush(ingress.DefaultMaxPushes, "ci")); code != http.StatusAccepted {
		t.Fatalf("%d artifacts: %d %s", ingress.DefaultMaxPushes, code, body)
	}
	if evs := stored(t, f.b); len(evs) != ingress.DefaultMaxPushes {
		t.Fatalf("%d events, want %d", len(evs), ingress.DefaultMaxPushes)
	}
}

// D7: a push whose event is over the bus's maximum payload (a 700 KB
// operator) is 413 naming the limit, not 503 "retry later": a registry
// would retry for ever.
func TestOversizeEventIs413(t *testing.T) {
	f := setup(t, defaultConfig(t))
	code, body := post(t, f.url+"/hooks/registry", header("Content-Type", "application/json", "Authorization", "Bearer "+regToken),
		harborPush(1, strings.Repeat("o", 700<<10)))
	limit := fmt.Sprintf("limit %d", f.b.Conn().MaxPayload())
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, limit) {
		t.Fatalf("%d %.300s, want 413 naming the %s", code, body, limit)
	}
	if !f.b.Conn().IsConnected() {
		t.Fatalf("connection %s", f.b.Conn().Status())
	}
	if code, body := post(t, f.url+"/hooks/registry", header("Content-Type", "application/json", "Authorization", "Bearer "+regToken),
		harborPush(1, "ci")); code != http.StatusAccepted {
		t.Fatalf("the next push: %d %s", code, body)
	}
}
