package feedback

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

type request struct {
	Method, Path string
	Header       http.Header
	Body         map[string]string
}

// fakeGitHub records requests; status answers each in turn (201 when empty).
type fakeGitHub struct {
	mu       sync.Mutex
	requests []request
	statuses []int
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]string
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, "body is not a JSON object of strings: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	code := http.StatusCreated
	if len(f.statuses) > 0 {
		code, f.statuses = f.statuses[0], f.statuses[1:]
	}
	f.mu.Unlock()
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{}`))
}

func newClient(t *testing.T, f *fakeGitHub) *GitHub {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	g, err := New(Options{APIURL: srv.URL + "/api/v3", Token: "ghs_test", TargetURL: "https://rampart.example/r/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSendBlockedPullRequest(t *testing.T) {
	f := &fakeGitHub{}
	g := newClient(t, f)
	err := g.Send(t.Context(), Report{
		Repository: "github.com/acme/shop", SHA: "0123456789abcdef0123456789abcdef01234567", PullRequest: 7,
		State: StateFailure, Description: "blocked: 1 HIGH",
		Blocking: []finding.Finding{{ID: "aws-access-key-id", Package: "secret", Severity: finding.Critical, Title: "AWS Access Key ID", Target: "deploy/creds.env:2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 2 {
		t.Fatalf("%d requests, want status and comment", len(f.requests))
	}
	for _, r := range f.requests {
		if r.Method != http.MethodPost {
			t.Errorf("%s %s, want POST", r.Method, r.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer ghs_test" {
			t.Errorf("Authorization %q", got)
		}
		if got := r.Header.Get("Accept"); got != "application/vnd.github+json" {
			t.Errorf("Accept %q", got)
		}
		if got := r.Header.Get("X-GitHub-Api-Version"); got != "2022-11-28" {
			t.Errorf("X-GitHub-Api-Version %q", got)
		}
	}
	st := f.requests[0]
	if st.Path != "/api/v3/repos/acme/shop/statuses/0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("status path %s", st.Path)
	}
	want := map[string]string{"state": "failure", "context": "rampart/scan", "description": "blocked: 1 HIGH", "target_url": "https://rampart.example/r/1"}
	if !equal(st.Body, want) {
		t.Errorf("status body %v, want %v", st.Body, want)
	}
	c := f.requests[1]
	if c.Path != "/api/v3/repos/acme/shop/issues/7/comments" {
		t.Errorf("comment path %s", c.Path)
	}
	for _, s := range []string{"blocked", "CRITICAL", "`aws-access-key-id`", "`deploy/creds.env:2`"} {
		if !strings.Contains(c.Body["body"], s) {
			t.Errorf("comment does not mention %q:\n%s", s, c.Body["body"])
		}
	}
}

func TestSendPassOnlySetsStatus(t *testing.T) {
	f := &fakeGitHub{}
	g := newClient(t, f)
	err := g.Send(t.Context(), Report{Repository: "github.com/acme/shop", SHA: "abc", PullRequest: 7, State: StateSuccess,
		Description: strings.Repeat("x", 200)})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want the status only", len(f.requests))
	}
	if n := len([]rune(f.requests[0].Body["description"])); n != 140 {
		t.Errorf("description of %d characters, want 140", n)
	}
}

func TestSendRetriesServerErrorsNotRejections(t *testing.T) {
	f := &fakeGitHub{statuses: []int{http.StatusBadGateway, http.StatusCreated}}
	g := newClient(t, f)
	g.opts.Attempts = 2
	if err := g.Send(t.Context(), Report{Repository: "github.com/acme/shop", SHA: "abc", State: StateSuccess}); err != nil {
		t.Fatalf("after a 502 then 201: %v", err)
	}
	f2 := &fakeGitHub{statuses: []int{http.StatusUnprocessableEntity}}
	g2 := newClient(t, f2)
	err := g2.Send(t.Context(), Report{Repository: "github.com/acme/shop", SHA: "abc", State: StateSuccess})
	if !errors.Is(err, ErrRejected) || len(f2.requests) != 1 {
		t.Fatalf("422: err=%v after %d requests, want ErrRejected after 1", err, len(f2.requests))
	}
}

func TestSendNotGitHub(t *testing.T) {
	f := &fakeGitHub{}
	g := newClient(t, f)
	// A dot segment would move the token-authenticated POST to another API
	// path once the URL is resolved (repos/../orgs/... is orgs/...).
	for _, repo := range []string{"gitlab.com/acme/shop", "github.com/acme", "github.com/acme/shop/extra",
		"github.com/../orgs", "github.com/acme/..", "github.com/./shop", "github.com/acme/.", "github.com/ac%me/shop"} {
		if err := g.Send(t.Context(), Report{Repository: repo, SHA: "abc", State: StateSuccess}); !errors.Is(err, ErrNotGitHub) {
			t.Errorf("%s: err = %v, want ErrNotGitHub", repo, err)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("%d requests sent for repositories that are not GitHub's", len(f.requests))
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
