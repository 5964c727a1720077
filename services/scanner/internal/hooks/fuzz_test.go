package hooks_test

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/rampartci/rampart/services/scanner/internal/hooks"
)

// The fuzz targets check that no input panics, that every failure wraps one
// of the package's sentinels (so the HTTP layer can map it to a status), and
// that every success carries validated fields.

var sentinels = []error{hooks.ErrTooLarge, hooks.ErrUnauthorized, hooks.ErrMalformed, hooks.ErrUnsupported, hooks.ErrIgnored}

func checkSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}

var (
	fuzzDigest = regexp.MustCompile(`^sha(256|512):[a-f0-9]+$`)
	fuzzSHA    = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
)

func checkPushes(t *testing.T, pushes []hooks.ArtifactPush) {
	t.Helper()
	if len(pushes) == 0 {
		t.Fatal("success with no pushes")
	}
	for _, p := range pushes {
		if !fuzzDigest.MatchString(p.Digest) || p.Registry == "" || p.Repository == "" || p.ID == "" ||
			strings.ContainsAny(p.Ref(), " \n\t") {
			t.Fatalf("invalid push accepted: %+v", p)
		}
	}
}

func FuzzParseDistribution(f *testing.F) {
	f.Add(distCT, readTestdata(f, "distribution_push.json"))
	f.Add(distCT, []byte(`{"events":[{"action":"push","target":{"digest":"`+digest+`","repository":"a","url":"http://h/v2/a/manifests/x"}}]}`))
	f.Add("application/json", []byte(`{"events":[]}`))
	f.Add(distCT, []byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		pushes, err := hooks.ParseDistribution(ct, body)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		checkPushes(t, pushes)
	})
}

func FuzzParseHarbor(f *testing.F) {
	f.Add("application/json", readTestdata(f, "harbor_push_default.json"))
	f.Add("application/cloudevents+json", readTestdata(f, "harbor_push_cloudevents.json"))
	f.Add("application/json", []byte(`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"digest":"`+digest+`","resource_url":"h/a@`+digest+`"}],"repository":{"repo_full_name":"a"}}}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		pushes, err := hooks.ParseHarbor(ct, body)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		checkPushes(t, pushes)
	})
}

func checkCommit(t *testing.T, c hooks.Commit) {
	t.Helper()
	if !fuzzSHA.MatchString(c.SHA) || !strings.HasPrefix(c.Ref, "refs/") || c.RepoURL == "" || c.Repository == "" || c.ID == "" {
		t.Fatalf("invalid commit accepted: %+v", c)
	}
}

func FuzzParseGitHub(f *testing.F) {
	f.Add("push", "application/json", readTestdata(f, "github_push.json"), true)
	f.Add("pull_request", "application/json", readTestdata(f, "github_pull_request.json"), true)
	f.Add("push", "application/x-www-form-urlencoded", []byte("payload=%7B%7D"), true)
	f.Add("ping", "application/json", []byte(`{}`), false)
	f.Fuzz(func(t *testing.T, event, ct string, body []byte, signed bool) {
		h := http.Header{}
		h.Set("Content-Type", ct)
		h.Set(hooks.GitHubEventHeader, event)
		if signed {
			// Sign most inputs so the fuzzer reaches the decoders.
			h.Set(hooks.GitHubSignatureHeader, sign(ghSecret, body))
		}
		c, err := hooks.ParseGitHub(h, body, ghSecret)
		if err != nil {
			checkSentinel(t, err)
			if !signed && !errors.Is(err, hooks.ErrUnauthorized) {
				t.Fatalf("unsigned body got past verification: %v", err)
			}
			return
		}
		if !signed {
			t.Fatal("unsigned body accepted")
		}
		checkCommit(t, c)
	})
}

func FuzzParseGitLab(f *testing.F) {
	f.Add("Push Hook", glToken, readTestdata(f, "gitlab_push.json"))
	f.Add("Tag Push Hook", glToken, readTestdata(f, "gitlab_tag_push.json"))
	f.Add("Push Hook", "wrong", []byte(`{}`))
	f.Fuzz(func(t *testing.T, event, token string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(hooks.GitLabEventHeader, event)
		h.Set(hooks.GitLabTokenHeader, token)
		c, err := hooks.ParseGitLab(h, body, glToken)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if token != glToken {
			t.Fatalf("wrong token %q accepted", token)
		}
		checkCommit(t, c)
	})
}
