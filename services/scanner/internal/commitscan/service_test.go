package commitscan

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/contract"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/feedback"
)

// githubCall is one request the fake GitHub received.
type githubCall struct {
	Path string
	Body map[string]string
}

type fakeGitHub struct {
	mu    sync.Mutex
	calls []githubCall
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer gh-token" || json.NewDecoder(r.Body).Decode(&body) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, githubCall{Path: r.URL.Path, Body: body})
	f.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (f *fakeGitHub) snapshot() []githubCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// env is a source Service consuming commits from a real embedded JetStream.
type env struct {
	bus    *bus.Bus
	svc    *Service
	pub    ed25519.PublicKey
	specs  *contract.ObjectStore
	github *fakeGitHub
	seen   func() []cloudevents.Event // verdicts published so far
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := contract.OpenObjectStore(t.Context(), b.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	gh := &fakeGitHub{}
	ghSrv := httptest.NewServer(gh)
	t.Cleanup(ghSrv.Close)
	t.Setenv("RAMPART_TEST_GH_TOKEN", "gh-token")
	t.Setenv("RAMPART_TEST_SARIF_TOKEN", "sarif-token")

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := New(Options{
		Scanner:     newTestScanner(t, ScannerOptions{Specs: specs, DisableMisconf: true}),
		Specs:       specs,
		Key:         key,
		Publisher:   b,
		GitHub:      &feedback.Options{APIURL: ghSrv.URL},
		GitHubToken: policy.Secret{Env: "RAMPART_TEST_GH_TOKEN"},
		SARIFToken:  policy.Secret{Env: "RAMPART_TEST_SARIF_TOKEN"},
		Logger:      logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := b.Consume(t.Context(), bus.ConsumerOptions{Durable: "scanner-source", FilterSubjects: []string{"rampart.commit.>"}}, svc.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cons.Stop)

	// Collect every verdict on the stream.
	var mu sync.Mutex
	var verdicts []cloudevents.Event
	oc, err := b.JetStream().OrderedConsumer(t.Context(), bus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"rampart.scan.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := oc.Consume(func(m jetstream.Msg) {
		ev, err := events.FromMsg(m.Headers(), m.Data())
		if err != nil {
			t.Errorf("verdict message: %v", err)
			return
		}
		mu.Lock()
		verdicts = append(verdicts, ev)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return &env{bus: b, svc: svc, pub: pub, specs: specs, github: gh, seen: func() []cloudevents.Event {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(verdicts)
	}}
}

// publishCommit publishes a commit event for app and returns its id.
func (e *env) publishCommit(t *testing.T, c events.Commit) string {
	t.Helper()
	ev, err := events.NewCommit(events.Meta{Source: "/test/git", App: "shop", ChainID: "chain-" + c.SHA[:8]}, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID()
}

// verdictFor waits for the verified verdict on sha.
func (e *env) verdictFor(t *testing.T, sha string) (cloudevents.Event, events.Scan) {
	t.Helper()
	var ev cloudevents.Event
	var s events.Scan
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, v := range e.seen() {
			got, err := events.VerifyScan(v, e.pub)
			if err != nil {
				return fmt.Errorf("verdict %s: %w", v.ID(), err)
			}
			if got.Target == sha {
				ev, s = v, got
				return nil
			}
		}
		return fmt.Errorf("no verdict for %s among %d", sha, len(e.seen()))
	})
	return ev, s
}

func TestHandleBlocksAWSKeyAndPassesCleanCommit(t *testing.T) {
	e := newEnv(t)
	r := newRepo(t)
	leaky := r.commit("add creds", map[string]string{
		"main.go":                "package main\n",
		"deploy/credentials.env": "# prod\nAWS_ACCESS_KEY_ID=" + awsKeyID + "\naws_secret_access_key = \"" + awsSecretKey + "\"\n",
	})
	commitID := e.publishCommit(t, r.event(leaky))

	ev, s := e.verdictFor(t, leaky)
	if s.Outcome != events.OutcomeBlocked || s.TargetKind != "source" || s.Environment != "source" {
		t.Fatalf("verdict %+v, want a blocked source verdict", s)
	}
	if !strings.Contains(s.Reason, "aws-access-key-id (CRITICAL) in deploy/credentials.env:2") {
		t.Errorf("reason %q does not name the key's file:line", s.Reason)
	}
	if !slices.ContainsFunc(s.Findings, func(f events.Finding) bool {
		return f.ID == "aws-secret-access-key" && f.Package == "deploy/credentials.env:3" && f.Severity == "CRITICAL"
	}) {
		t.Errorf("findings %+v do not name the secret key at deploy/credentials.env:3", s.Findings)
	}
	if s.Counts["critical"] != 2 {
		t.Errorf("counts %v, want 2 critical", s.Counts)
	}
	if events.App(ev) != "shop" || events.ChainID(ev) != "chain-"+leaky[:8] {
		t.Errorf("verdict app %q chain %q, want the commit's", events.App(ev), events.ChainID(ev))
	}
	if cd, err := events.Parse(ev); err != nil || cd.CausedBy() != commitID {
		t.Errorf("verdict caused by %v (err %v), want the commit event %s", cd, err, commitID)
	}

	clean := r.commit("remove creds", map[string]string{"deploy/credentials.env": ""})
	e.publishCommit(t, r.event(clean))
	if _, s := e.verdictFor(t, clean); s.Outcome != events.OutcomePass || len(s.Findings) != 0 {
		t.Fatalf("clean commit: verdict %+v, want pass without findings", s)
	}

	// GitHub heard about both: failure then success, under rampart/scan.
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := len(e.github.snapshot()); n != 2 {
			return fmt.Errorf("%d GitHub calls, want 2", n)
		}
		return nil
	})
	calls := e.github.snapshot()
	for i, want := range []struct{ sha, state string }{{leaky, "failure"}, {clean, "success"}} {
		c := calls[i]
		if c.Path != "/repos/acme/shop/statuses/"+want.sha || c.Body["state"] != want.state || c.Body["context"] != "rampart/scan" {
			t.Errorf("GitHub call %d: %s %v, want %s status for %s", i, c.Path, c.Body, want.state, want.sha)
		}
	}
}

func TestHandleCommentsOnBlockedPullRequest(t *testing.T) {
	e := newEnv(t)
	r := newRepo(t)
	base := r.commit("base", map[string]string{"main.go": "package main\n"})
	head := r.commit("pr", map[string]string{"go.mod": goModVulnerable})
	c := r.event(head)
	c.Ref, c.PullRequest = r.pullRef(12, head, base), 12
	e.publishCommit(t, c)

	if _, s := e.verdictFor(t, head); s.Outcome != events.OutcomeBlocked {
		t.Fatalf("verdict %+v, want blocked on CVE-2023-44487", s)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := len(e.github.snapshot()); n != 2 {
			return fmt.Errorf("%d GitHub calls, want status and comment", n)
		}
		return nil
	})
	comment := e.github.snapshot()[1]
	if comment.Path != "/repos/acme/shop/issues/12/comments" || !strings.Contains(comment.Body["body"], "CVE-2023-44487") {
		t.Errorf("comment %s %q, want one on PR 12 naming CVE-2023-44487", comment.Path, comment.Body["body"])
	}
}

func TestHandleBlocksBreakingAPIChange(t *testing.T) {
	e := newEnv(t)
	r := newRepo(t)
	v1, err := os.ReadFile("contract/testdata/v1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := os.ReadFile("contract/testdata/v2-compatible.yaml")
	v3, _ := os.ReadFile("contract/testdata/v3-breaking.yaml")

	// First passing commit: its spec becomes the live one.
	first := r.commit("api v1", map[string]string{"openapi.yaml": string(v1)})
	e.publishCommit(t, r.event(first))
	if _, s := e.verdictFor(t, first); s.Outcome != events.OutcomePass {
		t.Fatalf("first spec: %+v, want pass", s)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		live, found, err := e.specs.Live(t.Context(), "github.com/acme/shop")
		if err != nil || !found || live.SHA != first {
			return fmt.Errorf("live spec %s found=%v err=%v, want %s", live.SHA, found, err, first)
		}
		return nil
	})

	// A breaking change is blocked, naming each break, and the live spec stays.
	breaking := r.commit("api v3", map[string]string{"openapi.yaml": string(v3)})
	e.publishCommit(t, r.event(breaking))
	_, s := e.verdictFor(t, breaking)
	if s.Outcome != events.OutcomeBlocked {
		t.Fatalf("breaking spec: %+v, want blocked", s)
	}
	for _, want := range []string{"openapi/api-path-removed-without-deprecation", "openapi/request-parameter-type-changed"} {
		if !slices.ContainsFunc(s.Findings, func(f events.Finding) bool {
			return f.ID == want && f.Severity == "HIGH" && strings.HasPrefix(f.Package, "openapi.yaml ")
		}) {
			t.Errorf("findings %+v lack a High %s", s.Findings, want)
		}
	}
	if !strings.Contains(s.Reason, "in openapi.yaml POST /orders") || !strings.Contains(s.Reason, "in openapi.yaml GET /orders/{id}") {
		t.Errorf("reason %q does not list the removed endpoint", s.Reason)
	}
	if live, _, _ := e.specs.Live(t.Context(), "github.com/acme/shop"); live.SHA != first {
		t.Errorf("live spec moved to %s after a blocked commit", live.SHA)
	}

	// A compatible change passes and becomes live.
	compatible := r.commit("api v2", map[string]string{"openapi.yaml": string(v2)})
	e.publishCommit(t, r.event(compatible))
	if _, s := e.verdictFor(t, compatible); s.Outcome != events.OutcomePass {
		t.Fatalf("compatible spec: %+v, want pass", s)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if live, _, _ := e.specs.Live(t.Context(), "github.com/acme/shop"); live.SHA != compatible {
			return fmt.Errorf("live spec %s, want %s", live.SHA, compatible)
		}
		return nil
	})
}

func TestHandleUnreachableRepositoryIsAnErrorVerdict(t *testing.T) {
	e := newEnv(t)
	sha := strings.Repeat("c", 40)
	e.publishCommit(t, events.Commit{Repository: "github.com/acme/shop", RepoURL: "file:///nonexistent/shop", SHA: sha})
	if _, s := e.verdictFor(t, sha); s.Outcome != events.OutcomeError || !strings.Contains(s.Reason, "checked out") {
		t.Fatalf("verdict %+v, want error outcome saying the commit was not checked out", s)
	}
}

func TestHandlePoisonsNonCommitEvents(t *testing.T) {
	e := newEnv(t)
	ev, err := events.NewArtifactPushed(events.Meta{Source: "/test"}, events.Artifact{Purl: "pkg:oci/shop@sha256:" + strings.Repeat("a", 64), Digest: "sha256:" + strings.Repeat("a", 64)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Handle(t.Context(), bus.Delivery{Event: ev, Attempt: 1}); err == nil || !strings.Contains(err.Error(), bus.ErrPoison.Error()) {
		t.Errorf("Handle(artifact event) = %v, want poison", err)
	}
}

func TestSARIFHook(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	e.svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	doc, err := os.ReadFile("sarif/testdata/codeql.sarif")
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("d", 40)
	post := func(token, query string, body []byte) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+SARIFPath+query, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	q := "?commit=" + sha + "&repository=github.com/acme/shop&app=shop"
	tests := []struct {
		name, token, query string
		body               []byte
		code               int
		want               string
	}{
		{"no token", "", q, doc, http.StatusUnauthorized, "unauthorized"},
		{"wrong token", "nope", q, doc, http.StatusUnauthorized, "unauthorized"},
		{"not SARIF", "sarif-token", q, []byte(`{"version":"1.0.0","runs":[]}`), http.StatusBadRequest, "is not 2.1.0"},
		{"no commit", "sarif-token", "?repository=x", doc, http.StatusBadRequest, "not a full commit hash"},
		{"app not a name", "sarif-token", "?commit=" + sha + "&app=" + strings.Repeat("a", 5000), doc, http.StatusBadRequest, "app \"aaaa"},
		{"app with a wildcard", "sarif-token", "?commit=" + sha + "&app=shop.%3E", doc, http.StatusBadRequest, "lower-case letters, digits and dashes"},
		{"too large", "sarif-token", q, bytes.Repeat([]byte(" "), 33<<20), http.StatusRequestEntityTooLarge, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(tt.token, tt.query, tt.body)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%d %q, want %d mentioning %q", resp.StatusCode, body, tt.code, tt.want)
			}
		})
	}
	if n := len(e.seen()); n != 0 {
		t.Fatalf("%d verdicts published from failed requests", n)
	}

	resp, body := post("sarif-token", q, doc)
	var ans SARIFAnswer
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal([]byte(body), &ans) != nil || ans.Outcome != gate.Blocked ||
		ans.Blocking != 1 || len(ans.Findings) != 1 || ans.Findings[0].ID != "go/sql-injection" || ans.Duplicate {
		t.Fatalf("%d %s, want 202 blocked by go/sql-injection", resp.StatusCode, body)
	}
	ev, s := e.verdictFor(t, sha)
	if !slices.ContainsFunc(s.Findings, func(f events.Finding) bool {
		return f.ID == "go/sql-injection" && f.Severity == "HIGH" && f.Package == "internal/store/orders.go:88"
	}) || !strings.HasPrefix(s.Reason, "SARIF from CodeQL; go/sql-injection (HIGH) in internal/store/orders.go:88") {
		t.Errorf("verdict %+v, want the CodeQL SQL injection as High", s)
	}
	if events.App(ev) != "shop" {
		t.Errorf("app %q, want shop", events.App(ev))
	}
	// The same upload again is the same event: JetStream keeps one.
	if _, body := post("sarif-token", q, doc); !strings.Contains(body, `"duplicate":true`) {
		t.Errorf("second upload answered %s, want it marked a duplicate", body)
	}
	stream, err := e.bus.JetStream().Stream(context.Background(), bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter("rampart.scan.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects["rampart.scan.shop"]; n != 1 {
		t.Errorf("%d verdicts stored after uploading the same SARIF twice, want 1", n)
	}
}
