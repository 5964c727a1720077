package hooks

import (
	"fmt"
	"net/http"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// GitLab delivery headers.
const (
	GitLabEventHeader = "X-Gitlab-Event"
	GitLabTokenHeader = "X-Gitlab-Token"
)

type gitlabPush struct {
	ObjectKind  string  `json:"object_kind"`
	Ref         string  `json:"ref"`
	Before      string  `json:"before"`
	After       string  `json:"after"`
	CheckoutSHA *string `json:"checkout_sha"`
	UserName    string  `json:"user_username"`
	ProjectID   int64   `json:"project_id"`
	Project     *struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
	} `json:"project"`
}

// ParseGitLab verifies and decodes a GitLab push or tag push hook into a
// Commit. Branch and tag deletions are ErrIgnored; other hooks are
// ErrUnsupported.
func ParseGitLab(h http.Header, body []byte, token string) (Commit, error) {
	if err := webhook.VerifyToken(token, h.Get(GitLabTokenHeader), GitLabTokenHeader); err != nil {
		return Commit{}, err
	}
	if mt := webhook.MediaType(h.Get("Content-Type")); mt != "application/json" {
		return Commit{}, fmt.Errorf("%w: content type %q, want application/json", ErrUnsupported, h.Get("Content-Type"))
	}
	var kind string
	switch ev := h.Get(GitLabEventHeader); ev {
	case "Push Hook":
		kind = "push"
	case "Tag Push Hook":
		kind = "tag_push"
	case "":
		return Commit{}, fmt.Errorf("%w: %s header missing", ErrMalformed, GitLabEventHeader)
	default:
		return Commit{}, fmt.Errorf("%w: GitLab event %q (want Push Hook or Tag Push Hook)", ErrUnsupported, ev)
	}

	var p gitlabPush
	if err := webhook.Decode(body, &p, false); err != nil {
		return Commit{}, err
	}
	if p.ObjectKind != kind {
		return Commit{}, fmt.Errorf("%w: object_kind %q does not match %s %q", ErrMalformed, p.ObjectKind, GitLabEventHeader, h.Get(GitLabEventHeader))
	}
	if err := checkRef("ref", p.Ref); err != nil {
		return Commit{}, err
	}
	if zeroSHA(p.After) {
		return Commit{}, fmt.Errorf("%w: %s deleted", ErrIgnored, p.Ref)
	}
	// checkout_sha is the commit the ref points at after the push (for an
	// annotated tag, the tagged commit rather than the tag object).
	sha := p.After
	if p.CheckoutSHA != nil && *p.CheckoutSHA != "" {
		sha = *p.CheckoutSHA
	}
	if err := checkSHA("checkout_sha", sha); err != nil {
		return Commit{}, err
	}
	if p.Project == nil {
		return Commit{}, fmt.Errorf("%w: project: missing", ErrMalformed)
	}
	if p.Project.PathWithNamespace == "" {
		return Commit{}, fmt.Errorf("%w: project.path_with_namespace: missing", ErrMalformed)
	}
	if err := checkGitRepo("project.path_with_namespace", p.Project.PathWithNamespace); err != nil {
		return Commit{}, err
	}
	if err := checkCloneURL("project.git_http_url", p.Project.GitHTTPURL); err != nil {
		return Commit{}, err
	}
	return Commit{
		ID:         stableID(SourceGitLab, kind, p.Project.PathWithNamespace, p.Ref, p.Before, p.After),
		Source:     SourceGitLab,
		Event:      kind,
		Repository: p.Project.PathWithNamespace,
		RepoURL:    p.Project.GitHTTPURL,
		SHA:        sha,
		Ref:        p.Ref,
		Sender:     p.UserName,
	}, nil
}
