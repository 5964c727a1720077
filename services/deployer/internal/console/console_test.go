package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/adminapi"
	"github.com/rampartci/rampart/services/deployer/adminapi/adminapitest"
	"github.com/rampartci/rampart/services/deployer/internal/console"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

var tokens = console.Tokens{Viewer: "viewer-secret", Operator: "operator-secret"}

func canary() adminapi.Rollout {
	now := time.Now().UTC()
	return adminapi.Rollout{ID: "shop-1", App: "shop", Environment: "prod", Artifact: "pkg:oci/shop@sha256:" + strings.Repeat("a", 64) + "?tag=v2",
		Steps: []int{5, 25, 50, 100}, Pause: time.Minute, Step: 1, Weight: 25, StepStartedAt: now, Phase: adminapi.PhaseProgressing,
		ChainID: "chain-1", CreatedAt: now, UpdatedAt: now}
}

type fixture struct {
	srv      *httptest.Server
	ro       *adminapitest.Rollouts
	stopping chan struct{}
}

func start(t *testing.T, kv jetstream.KeyValue) *fixture {
	t.Helper()
	pol, err := policy.Parse("rampart.yaml", []byte(`version: 1
apps:
  - name: shop
    image: registry.example/shop
    environment: prod
    router: {type: local, local: {listen: "127.0.0.1:0", stable: "http://127.0.0.1:1", canary: "http://127.0.0.1:2"}}
    analysis: {errorRate: {max: 0.01, minRequests: 20}}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ro: adminapitest.New(canary()), stopping: make(chan struct{})}
	c, err := console.New(console.Options{Tokens: tokens, Rollouts: f.ro, Policy: policy.StoreOf(pol)})
	if err != nil {
		t.Fatal(err)
	}
	if kv != nil {
		ctx, cancel := context.WithCancel(context.Background())
		if err := c.Follow(ctx, kv, f.stopping); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); c.Wait() })
	}
	mux := http.NewServeMux()
	c.Routes(mux)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// login posts token to the login form and returns the session cookie.
func (f *fixture) login(t *testing.T, token string) (*http.Response, *http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/console/login", strings.NewReader(url.Values{"token": {token}, "next": {"/console/scans"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			return resp, c
		}
	}
	return resp, nil
}

func (f *fixture) get(t *testing.T, path string, cookie *http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestLogin(t *testing.T) {
	f := start(t, nil)
	if resp := f.get(t, "/console/rollouts", nil); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/console/login?next="+url.QueryEscape("/console/rollouts") {
		t.Fatalf("without a session: %s to %q, want 303 to the login page", resp.Status, resp.Header.Get("Location"))
	}
	if resp, c := f.login(t, "wrong"); resp.StatusCode != http.StatusUnauthorized || c != nil {
		t.Errorf("a wrong token: %s, cookie %v; want 401 and no cookie", resp.Status, c)
	}
	resp, c := f.login(t, tokens.Viewer)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/scans" || c == nil {
		t.Fatalf("the viewer's token: %s to %q, cookie %v", resp.Status, resp.Header.Get("Location"), c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/console/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/", c)
	}
	page := f.get(t, "/console/rollouts", c)
	body, _ := io.ReadAll(page.Body)
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="rollout-shop-1"`) {
		t.Fatalf("rollouts page with the session: %s\n%s", page.Status, body)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if strings.Contains(string(body), `class="act"`) {
		t.Error("the viewer is offered actions")
	}
	// A login never sends the browser off the console.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/elsewhere"} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/console/login", strings.NewReader(url.Values{"token": {tokens.Viewer}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != "/console/rollouts" {
			t.Errorf("next=%q: redirected to %q, want /console/rollouts", next, got)
		}
	}
}

func TestActions(t *testing.T) {
	f := start(t, nil)
	_, viewer := f.login(t, tokens.Viewer)
	_, operator := f.login(t, tokens.Operator)
	forged := &http.Cookie{Name: console.CookieName, Value: "operator" + strings.TrimPrefix(viewer.Value, "viewer")}
	expired := &http.Cookie{Name: console.CookieName, Value: "operator.1.AAAA"}
	for _, tc := range []struct {
		name        string
		cookie      *http.Cookie
		contentType string
		origin      string
		want        int
	}{
		{"no session", nil, "application/json", "", http.StatusUnauthorized},
		{"viewer", viewer, "application/json", "", http.StatusForbidden},
		{"viewer cookie relabelled operator", forged, "application/json", "", http.StatusUnauthorized},
		{"expired", expired, "application/json", "", http.StatusUnauthorized},
		{"form post", operator, "application/x-www-form-urlencoded", "", http.StatusUnsupportedMediaType},
		{"text/plain", operator, "text/plain", "", http.StatusUnsupportedMediaType},
		{"another origin", operator, "application/json", "https://evil.example", http.StatusForbidden},
		{"operator", operator, "application/json", "SELF", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/console/rollouts/shop-1/pause", strings.NewReader(`{"reason":"look"}`))
			req.Header.Set("Content-Type", tc.contentType)
			if tc.origin == "SELF" {
				tc.origin = f.srv.URL
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.cookie != nil {
				req.AddCookie(tc.cookie)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %s", resp.Status, body)
			}
		})
	}
	if want := []string{"pause:look"}; fmt.Sprint(f.ro.Acted()) != fmt.Sprint(want) {
		t.Errorf("actions applied %v, want only %v", f.ro.Acted(), want)
	}
	if want := adminapi.OperatorActor(tokens.Operator, "console"); len(f.ro.Actors()) != 1 || f.ro.Actors()[0] != want {
		t.Errorf("action asked for by %+v, want %+v", f.ro.Actors(), want)
	}
	// Bad input is refused before anything is applied.
	for path, want := range map[string]int{
		"/console/rollouts/shop-1/explode": http.StatusBadRequest,
		"/console/rollouts/nope/abort":     http.StatusNotFound,
	} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.AddCookie(operator)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %s, want %d", path, resp.Status, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/console/rollouts/shop-1/abort", strings.NewReader(`{"reason": 5}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(operator)
	if resp, err := noRedirect.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed body: %s, want 400", resp.Status)
	}
	if len(f.ro.Acted()) != 1 {
		t.Errorf("bad requests applied actions: %v", f.ro.Acted())
	}
}

// A change of a rollout in the bucket reaches a page's event stream at
// once; the stream ends when the server stops.
func TestEventsFollowTheBucket(t *testing.T) {
	ns := natstest.Server(t, "")
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "RAMPART_ROLLOUTS"})
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, kv)
	_, viewer := f.login(t, tokens.Viewer)
	resp := f.get(t, "/console/events", viewer)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	updates := make(chan map[string]string, 16)
	go func() {
		defer close(updates)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var u map[string]string
				if json.Unmarshal([]byte(data), &u) == nil {
					updates <- u
				}
			}
		}
	}()
	next := func(what string) map[string]string {
		t.Helper()
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatalf("%s: the stream ended", what)
			}
			return u
		case <-time.After(time.Second):
			t.Fatalf("%s: nothing within a second", what)
		}
		return nil
	}
	if u := next("the current rollouts"); u["id"] != "rollout-shop-1" || !strings.Contains(u["html"], `data-weight="25"`) {
		t.Fatalf("first update %v", u)
	}
	r := canary()
	r.Phase, r.Weight, r.Reason = adminapi.PhaseRolledBack, 0, "http-5xx-ratio 4% > 1%"
	raw, _ := json.Marshal(r)
	sent := time.Now()
	if _, err := kv.Put(t.Context(), "rollout.shop-1", raw); err != nil {
		t.Fatal(err)
	}
	u := next("the rollback")
	if !strings.Contains(u["html"], `data-weight="0"`) || !strings.Contains(u["html"], `data-phase="rolledback"`) {
		t.Fatalf("update after the rollback: %v", u)
	}
	t.Logf("the rollback reached the stream %s after it was stored", time.Since(sent).Round(time.Microsecond))
	close(f.stopping)
	select {
	case _, ok := <-updates:
		if ok {
			t.Error("an update after the server stopped")
		}
	case <-time.After(2 * time.Second):
		t.Error("the stream did not end when the server stopped")
	}
}
