package hooks_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/scanner/internal/hooks"
)

var ghSecret = []byte("It's a Secret to Everybody")

func sign(secret, body []byte) string { return webhook.Sign(secret, body) }

func ghHeader(event string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(hooks.GitHubEventHeader, event)
	h.Set(hooks.GitHubDeliveryHeader, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set(hooks.GitHubSignatureHeader, sign(ghSecret, body))
	return h
}

func TestGitHubSignatureKnownVector(t *testing.T) {
	// The example from GitHub's "Validating webhook deliveries" docs.
	err := webhook.VerifySignature([]byte("It's a Secret to Everybody"), []byte("Hello, World!"),
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", hooks.GitHubSignatureHeader)
	if err != nil {
		t.Errorf("GitHub's documented example does not verify: %v", err)
	}
}

func TestParseGitHubPush(t *testing.T) {
	body := readTestdata(t, "github_push.json")
	c, err := hooks.ParseGitHub(ghHeader("push", body), body, ghSecret)
	if err != nil {
		t.Fatalf("ParseGitHub: %v", err)
	}
	want := hooks.Commit{
		ID:         c.ID,
		Source:     hooks.SourceGitHub,
		Event:      "push",
		Repository: "rampartci/app",
		RepoURL:    "https://github.com/rampartci/app.git",
		SHA:        "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
		Ref:        "refs/heads/main",
		Sender:     "octocat",
	}
	if c != want {
		t.Errorf("commit = %+v\nwant %+v", c, want)
	}
	if !strings.HasPrefix(c.ID, "github-") {
		t.Errorf("ID = %q", c.ID)
	}

	// The same payload form-encoded (GitHub's other content type) is the same commit.
	form := []byte("payload=" + url.QueryEscape(string(body)))
	h := ghHeader("push", form)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	fc, err := hooks.ParseGitHub(h, form, ghSecret)
	if err != nil || fc != c {
		t.Errorf("form-encoded: %+v, %v", fc, err)
	}
}

func TestParseGitHubPullRequest(t *testing.T) {
	body := readTestdata(t, "github_pull_request.json")
	c, err := hooks.ParseGitHub(ghHeader("pull_request", body), body, ghSecret)
	if err != nil {
		t.Fatalf("ParseGitHub: %v", err)
	}
	want := hooks.Commit{
		ID:         c.ID,
		Source:     hooks.SourceGitHub,
		Event:      "pull_request",
		Repository: "rampartci/app",
		RepoURL:    "https://github.com/rampartci/app.git", // the base repository, not the fork
		SHA:        "34c5c7793cb3b279e22454cb6750c80560547b3a",
		Ref:        "refs/pull/42/head",
		BaseRef:    "refs/heads/main",
		PRNumber:   42,
		Action:     "synchronize",
		Sender:     "contributor",
	}
	if c != want {
		t.Errorf("commit = %+v\nwant %+v", c, want)
	}
}

func TestParseGitHubErrors(t *testing.T) {
	push := readTestdata(t, "github_push.json")
	pr := readTestdata(t, "github_pull_request.json")
	tests := []struct {
		name    string
		event   string
		body    []byte
		header  func(h http.Header) // changes after signing
		secret  []byte
		wantErr error
		wantMsg string
	}{
		{name: "no signature", event: "push", body: push, header: func(h http.Header) { h.Del(hooks.GitHubSignatureHeader) }, wantErr: hooks.ErrUnauthorized, wantMsg: "missing"},
		{name: "sha1 signature only", event: "push", body: push, header: func(h http.Header) {
			h.Set(hooks.GitHubSignatureHeader, "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6")
		}, wantErr: hooks.ErrUnauthorized},
		{name: "wrong secret", event: "push", body: push, secret: []byte("guess"), wantErr: hooks.ErrUnauthorized, wantMsg: "does not match"},
		{name: "no secret configured", event: "push", body: push, secret: []byte{}, wantErr: hooks.ErrUnauthorized, wantMsg: "no signing secret is configured"},
		{name: "signature not hex", event: "push", body: push, header: func(h http.Header) { h.Set(hooks.GitHubSignatureHeader, "sha256=zz") }, wantErr: hooks.ErrUnauthorized},
		{name: "body changed after signing", event: "push", body: push, header: func(h http.Header) {
			h.Set(hooks.GitHubSignatureHeader, sign(ghSecret, append([]byte(" "), push...)))
		}, wantErr: hooks.ErrUnauthorized},
		{name: "ping", event: "ping", body: []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`), wantErr: hooks.ErrIgnored},
		{name: "unsupported event", event: "issues", body: []byte(`{}`), wantErr: hooks.ErrUnsupported, wantMsg: `"issues"`},
		{name: "missing event header", event: "", body: push, wantErr: hooks.ErrMalformed, wantMsg: "X-GitHub-Event header missing"},
		{name: "xml", event: "push", body: push, header: func(h http.Header) { h.Set("Content-Type", "application/xml") }, wantErr: hooks.ErrUnsupported},
		{name: "branch deleted", event: "push", body: []byte(strings.Replace(string(push), `"deleted": false`, `"deleted": true`, 1)), wantErr: hooks.ErrIgnored, wantMsg: "refs/heads/main deleted"},
		{name: "short after", event: "push", body: []byte(strings.Replace(string(push), `"after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"`, `"after": "0d1a26e"`, 1)), wantErr: hooks.ErrMalformed, wantMsg: "after"},
		{name: "bad ref", event: "push", body: []byte(strings.Replace(string(push), `"ref": "refs/heads/main"`, `"ref": "main"`, 1)), wantErr: hooks.ErrMalformed, wantMsg: `ref: "main"`},
		{name: "no repository", event: "push", body: []byte(`{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}`), wantErr: hooks.ErrMalformed, wantMsg: "repository: missing"},
		{name: "repository name of 5,000 characters", event: "push", body: []byte(strings.Replace(string(push), `"full_name": "rampartci/app"`, `"full_name": "rampartci/`+strings.Repeat("a", 5000)+`"`, 1)), wantErr: hooks.ErrMalformed, wantMsg: "(5010 bytes)"},
		{name: "repository name with a space", event: "push", body: []byte(strings.Replace(string(push), `"full_name": "rampartci/app"`, `"full_name": "rampartci/a pp"`, 1)), wantErr: hooks.ErrMalformed, wantMsg: "not a repository path"},
		{name: "ssh clone url", event: "push", body: []byte(strings.Replace(string(push), `"clone_url": "https://github.com/rampartci/app.git"`, `"clone_url": "git@github.com:rampartci/app.git"`, 1)), wantErr: hooks.ErrMalformed, wantMsg: "clone_url"},
		{name: "pull request closed", event: "pull_request", body: []byte(strings.Replace(string(pr), `"action": "synchronize"`, `"action": "closed"`, 1)), wantErr: hooks.ErrIgnored, wantMsg: "closed"},
		{name: "pull request number as string", event: "pull_request", body: []byte(strings.Replace(string(pr), `"number": 42`, `"number": "42"`, 1)), wantErr: hooks.ErrMalformed, wantMsg: "number"},
		{name: "pull request without head sha", event: "pull_request", body: []byte(strings.Replace(string(pr), `"sha": "34c5c7793cb3b279e22454cb6750c80560547b3a"`, `"sha": ""`, 1)), wantErr: hooks.ErrMalformed, wantMsg: "pull_request.head.sha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := ghHeader(tt.event, tt.body)
			if tt.event == "" {
				h.Del(hooks.GitHubEventHeader)
			}
			if tt.header != nil {
				tt.header(h)
			}
			secret := ghSecret
			if tt.secret != nil {
				secret = tt.secret
			}
			c, err := hooks.ParseGitHub(h, tt.body, secret)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if c != (hooks.Commit{}) {
				t.Errorf("commit returned with an error: %+v", c)
			}
		})
	}
}

const glToken = "glpat-webhook-token"

func glHeader(event string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(hooks.GitLabEventHeader, event)
	h.Set(hooks.GitLabTokenHeader, glToken)
	return h
}

func TestParseGitLab(t *testing.T) {
	c, err := hooks.ParseGitLab(glHeader("Push Hook"), readTestdata(t, "gitlab_push.json"), glToken)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	want := hooks.Commit{
		ID:         c.ID,
		Source:     hooks.SourceGitLab,
		Event:      "push",
		Repository: "team/app",
		RepoURL:    "https://gitlab.example.com/team/app.git",
		SHA:        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
		Ref:        "refs/heads/main",
		Sender:     "jsmith",
	}
	if c != want {
		t.Errorf("push = %+v\nwant %+v", c, want)
	}

	tag, err := hooks.ParseGitLab(glHeader("Tag Push Hook"), readTestdata(t, "gitlab_tag_push.json"), glToken)
	if err != nil {
		t.Fatalf("tag push: %v", err)
	}
	// An annotated tag: the commit to scan is checkout_sha, not the tag object.
	if tag.Event != "tag_push" || tag.Ref != "refs/tags/v1.4.2" || tag.SHA != "5937ac0a7beb003549fc5fd26fc247adbce4a52e" || tag.ID == c.ID {
		t.Errorf("tag push = %+v", tag)
	}
}

func TestParseGitLabErrors(t *testing.T) {
	push := string(readTestdata(t, "gitlab_push.json"))
	tests := []struct {
		name    string
		event   string
		token   string // sent
		body    string
		wantErr error
		wantMsg string
	}{
		{"no token", "Push Hook", "", push, hooks.ErrUnauthorized, "missing"},
		{"wrong token", "Push Hook", "guess", push, hooks.ErrUnauthorized, "does not match"},
		{"merge request hook", "Merge Request Hook", glToken, `{"object_kind":"merge_request"}`, hooks.ErrUnsupported, "Merge Request Hook"},
		{"kind mismatch", "Tag Push Hook", glToken, push, hooks.ErrMalformed, `object_kind "push"`},
		{"branch deleted", "Push Hook", glToken, strings.Replace(push, `"after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`, `"after": "0000000000000000000000000000000000000000"`, 1), hooks.ErrIgnored, "deleted"},
		{"no project", "Push Hook", glToken, `{"object_kind":"push","ref":"refs/heads/main","after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}`, hooks.ErrMalformed, "project: missing"},
		{"bad checkout_sha", "Push Hook", glToken, strings.Replace(push, `"checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`, `"checkout_sha": "HEAD"`, 1), hooks.ErrMalformed, "checkout_sha"},
		{"path with ..", "Push Hook", glToken, strings.Replace(push, `"path_with_namespace": "team/app"`, `"path_with_namespace": "team/../app"`, 1), hooks.ErrMalformed, "not a repository path"},
		{"project_id as string", "Push Hook", glToken, strings.Replace(push, `"project_id": 15`, `"project_id": "15"`, 1), hooks.ErrMalformed, "project_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := glHeader(tt.event)
			h.Set(hooks.GitLabTokenHeader, tt.token)
			c, err := hooks.ParseGitLab(h, []byte(tt.body), glToken)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if c != (hooks.Commit{}) {
				t.Errorf("commit returned with an error: %+v", c)
			}
		})
	}
	if _, err := hooks.ParseGitLab(glHeader("Push Hook"), []byte(push), ""); !errors.Is(err, hooks.ErrUnauthorized) {
		t.Errorf("no configured token: err = %v, want ErrUnauthorized", err)
	}
}
