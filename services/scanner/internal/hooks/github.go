package hooks

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// GitHub delivery headers.
const (
	GitHubEventHeader     = "X-GitHub-Event"
	GitHubSignatureHeader = "X-Hub-Signature-256"
	GitHubDeliveryHeader  = "X-GitHub-Delivery"
)

// pull_request actions that put a new head commit up for review; the others
// (closed, labeled, edited, …) are ErrIgnored.
var githubPRActions = map[string]bool{"opened": true, "synchronize": true, "reopened": true, "ready_for_review": true}

type githubRepo struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
}

type githubPush struct {
	Ref        string      `json:"ref"`
	Before     string      `json:"before"`
	After      string      `json:"after"`
	Deleted    bool        `json:"deleted"`
	Repository *githubRepo `json:"repository"`
	Sender     struct {
		Login string `json:"login"`
	} `json:"sender"`
}

type githubPullRequest struct {
	Action      string `json:"action"`
	Number      int    `json:"number"`
	PullRequest *struct {
		Head struct {
			SHA string `json:"sha"`
			Ref string `json:"ref"`
		} `json:"head"`
		Base struct {
			Ref string `json:"ref"`
		} `json:"base"`
	} `json:"pull_request"`
	Repository *githubRepo `json:"repository"`
	Sender     struct {
		Login string `json:"login"`
	} `json:"sender"`
}

// ParseGitHub verifies and decodes a GitHub webhook delivery. push and
// pull_request become a Commit; ping, branch or tag deletions and
// pull_request actions that do not change the head are ErrIgnored; other
// events are ErrUnsupported. The signature is checked over the raw body
// before anything in it is trusted. Both content types GitHub offers are
// accepted: application/json and application/x-www-form-urlencoded
// (payload=<json>).
func ParseGitHub(h http.Header, body []byte, secret []byte) (Commit, error) {
	if err := webhook.VerifySignature(secret, body, h.Get(GitHubSignatureHeader), GitHubSignatureHeader); err != nil {
		return Commit{}, err
	}
	payload := body
	switch mt := webhook.MediaType(h.Get("Content-Type")); mt {
	case "application/json":
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return Commit{}, fmt.Errorf("%w: form body: %v", ErrMalformed, err)
		}
		if len(form["payload"]) != 1 {
			return Commit{}, fmt.Errorf("%w: form body needs exactly one payload field", ErrMalformed)
		}
		payload = []byte(form.Get("payload"))
	default:
		return Commit{}, fmt.Errorf("%w: content type %q, want application/json or application/x-www-form-urlencoded", ErrUnsupported, h.Get("Content-Type"))
	}

	switch event := h.Get(GitHubEventHeader); event {
	case "push":
		return parseGitHubPush(payload)
	case "pull_request":
		return parseGitHubPullRequest(payload)
	case "ping":
		return Commit{}, fmt.Errorf("%w: GitHub ping", ErrIgnored)
	case "":
		return Commit{}, fmt.Errorf("%w: %s header missing", ErrMalformed, GitHubEventHeader)
	default:
		return Commit{}, fmt.Errorf("%w: GitHub event %q (want push or pull_request)", ErrUnsupported, event)
	}
}

func checkGitHubRepo(r *githubRepo) error {
	if r == nil {
		return fmt.Errorf("%w: repository: missing", ErrMalformed)
	}
	if owner, name, ok := strings.Cut(r.FullName, "/"); !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w: repository.full_name: %q is not owner/name", ErrMalformed, r.FullName)
	}
	if err := checkGitRepo("repository.full_name", r.FullName); err != nil {
		return err
	}
	return checkCloneURL("repository.clone_url", r.CloneURL)
}

func parseGitHubPush(body []byte) (Commit, error) {
	var p githubPush
	if err := webhook.Decode(body, &p, false); err != nil {
		return Commit{}, err
	}
	if err := checkRef("ref", p.Ref); err != nil {
		return Commit{}, err
	}
	if p.Deleted || zeroSHA(p.After) {
		return Commit{}, fmt.Errorf("%w: %s deleted", ErrIgnored, p.Ref)
	}
	if err := checkSHA("after", p.After); err != nil {
		return Commit{}, err
	}
	if err := checkGitHubRepo(p.Repository); err != nil {
		return Commit{}, err
	}
	return Commit{
		ID:         stableID(SourceGitHub, "push", p.Repository.FullName, p.Ref, p.Before, p.After),
		Source:     SourceGitHub,
		Event:      "push",
		Repository: p.Repository.FullName,
		RepoURL:    p.Repository.CloneURL,
		SHA:        p.After,
		Ref:        p.Ref,
		Sender:     p.Sender.Login,
	}, nil
}

func parseGitHubPullRequest(body []byte) (Commit, error) {
	var p githubPullRequest
	if err := webhook.Decode(body, &p, false); err != nil {
		return Commit{}, err
	}
	if p.Action == "" {
		return Commit{}, fmt.Errorf("%w: action: missing", ErrMalformed)
	}
	if !githubPRActions[p.Action] {
		return Commit{}, fmt.Errorf("%w: pull_request %s", ErrIgnored, p.Action)
	}
	if p.Number <= 0 {
		return Commit{}, fmt.Errorf("%w: number: %d is not a pull request number", ErrMalformed, p.Number)
	}
	if p.PullRequest == nil {
		return Commit{}, fmt.Errorf("%w: pull_request: missing", ErrMalformed)
	}
	if err := checkSHA("pull_request.head.sha", p.PullRequest.Head.SHA); err != nil {
		return Commit{}, err
	}
	if p.PullRequest.Base.Ref == "" {
		return Commit{}, fmt.Errorf("%w: pull_request.base.ref: missing", ErrMalformed)
	}
	if err := checkGitHubRepo(p.Repository); err != nil {
		return Commit{}, err
	}
	// The head may live in a fork; GitHub also serves it from the base
	// repository as refs/pull/N/head, so the scan clones the base repository.
	return Commit{
		ID:         stableID(SourceGitHub, "pull_request", p.Repository.FullName, strconv.Itoa(p.Number), p.Action, p.PullRequest.Head.SHA),
		Source:     SourceGitHub,
		Event:      "pull_request",
		Repository: p.Repository.FullName,
		RepoURL:    p.Repository.CloneURL,
		SHA:        p.PullRequest.Head.SHA,
		Ref:        fmt.Sprintf("refs/pull/%d/head", p.Number),
		BaseRef:    "refs/heads/" + p.PullRequest.Base.Ref,
		PRNumber:   p.Number,
		Action:     p.Action,
		Sender:     p.Sender.Login,
	}, nil
}
