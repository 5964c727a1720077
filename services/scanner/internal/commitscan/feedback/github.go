// Package feedback reports a source verdict back on the change it is about:
// a GitHub commit status (context rampart/scan) and, for a pull request, a
// comment listing the findings that block it.
package feedback

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

// Context is the commit status context Rampart reports under.
const Context = "rampart/scan"

// Commit status states (GitHub REST API).
const (
	StateSuccess = "success"
	StateFailure = "failure"
	StateError   = "error"
)

// ErrNotGitHub: the repository is not on the configured GitHub host, so
// there is nowhere to report (e.g. a GitLab repository).
var ErrNotGitHub = errors.New("repository is not on GitHub")

// ErrRejected: GitHub refused the request for good (4xx other than 429);
// retrying will not help.
var ErrRejected = errors.New("GitHub rejected the request")

// Options configures the GitHub client.
type Options struct {
	// APIURL is the REST API base; default https://api.github.com. GitHub
	// Enterprise Server uses https://HOST/api/v3.
	APIURL string
	// Host is the web host repositories are named under ("github.com/acme/shop");
	// default github.com.
	Host string
	// Token authenticates (a GitHub App installation token or a fine-grained
	// token with commit statuses: write and pull requests: write).
	Token string
	// TargetURL, when set, is linked from the status (e.g. a Rampart report).
	TargetURL string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// Attempts per request for retryable failures (network, 5xx, 429);
	// default 3.
	Attempts int
}

// GitHub posts commit statuses and pull-request comments.
type GitHub struct {
	api    *url.URL
	opts   Options
	client *http.Client
	logger *slog.Logger
}

// New returns a GitHub client.
func New(opts Options, logger *slog.Logger) (*GitHub, error) {
	if opts.Token == "" {
		return nil, errors.New("github feedback: no token")
	}
	api, err := url.Parse(cmp.Or(opts.APIURL, "https://api.github.com"))
	if err != nil || (api.Scheme != "https" && api.Scheme != "http") || api.Host == "" {
		return nil, fmt.Errorf("github feedback: API URL %q is not an http(s) URL", opts.APIURL)
	}
	opts.Host = cmp.Or(opts.Host, "github.com")
	opts.Attempts = cmp.Or(opts.Attempts, 3)
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &GitHub{api: api, opts: opts, client: client, logger: logger}, nil
}

// Report is what is said about one commit.
type Report struct {
	Repository  string // e.g. github.com/acme/shop
	SHA         string
	PullRequest int    // non-zero: also comment on this pull request
	State       string // StateSuccess, StateFailure or StateError
	Description string // one line; GitHub keeps 140 characters
	Blocking    []finding.Finding
	Reasons     []string
	Notes       []string // what the scan did not cover, e.g. Go packages without their types
}

// Send posts the commit status and, for a pull request whose verdict is not
// a pass, the comment. It returns ErrNotGitHub for a repository elsewhere.
func (g *GitHub) Send(ctx context.Context, r Report) error {
	owner, repo, err := g.split(r.Repository)
	if err != nil {
		return err
	}
	status := map[string]string{
		"state":       r.State,
		"context":     Context,
		"description": truncate(r.Description, 140),
	}
	if g.opts.TargetURL != "" {
		status["target_url"] = g.opts.TargetURL
	}
	if err := g.post(ctx, fmt.Sprintf("repos/%s/%s/statuses/%s", owner, repo, url.PathEscape(r.SHA)), status); err != nil {
		return fmt.Errorf("commit status for %s@%s: %w", r.Repository, r.SHA, err)
	}
	if r.PullRequest == 0 || r.State == StateSuccess {
		return nil
	}
	body := map[string]string{"body": Comment(r)}
	if err := g.post(ctx, fmt.Sprintf("repos/%s/%s/issues/%d/comments", owner, repo, r.PullRequest), body); err != nil {
		return fmt.Errorf("comment on %s#%d: %w", r.Repository, r.PullRequest, err)
	}
	return nil
}

// maxListed bounds the findings a comment lists; GitHub caps a comment at
// 65,536 characters.
const maxListed = 50

// Comment is the pull-request comment for r, in GitHub Markdown.
func Comment(r Report) string {
	var b strings.Builder
	switch r.State {
	case StateError:
		fmt.Fprintf(&b, "### Rampart source scan: error\n\nThe scan of %s did not complete, so the change cannot pass.\n", short(r.SHA))
	default:
		fmt.Fprintf(&b, "### Rampart source scan: blocked\n\n%d finding(s) in %s block this change.\n", len(r.Blocking), short(r.SHA))
	}
	if len(r.Blocking) > 0 {
		b.WriteString("\n| severity | finding | where | detail |\n|---|---|---|---|\n")
		for i, f := range r.Blocking {
			if i == maxListed {
				fmt.Fprintf(&b, "\n…and %d more.\n", len(r.Blocking)-maxListed)
				break
			}
			fmt.Fprintf(&b, "| %s | `%s` | `%s` | %s |\n", f.Severity, cell(f.ID), cell(f.Target), cell(detail(f)))
		}
	} else {
		for _, reason := range r.Reasons {
			fmt.Fprintf(&b, "\n- %s", cell(reason))
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n> %s\n", cell(n))
	}
	return b.String()
}

func detail(f finding.Finding) string {
	d := f.Title
	if f.Package != "" && f.InstalledVersion != "" {
		d = fmt.Sprintf("%s %s: %s", f.Package, f.InstalledVersion, d)
		if f.FixedVersion != "" {
			d += " (fixed in " + f.FixedVersion + ")"
		}
	}
	return d
}

// cell makes s safe inside a Markdown table cell and inline code.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.NewReplacer("|", `\|`, "`", "'").Replace(s)
	return truncate(s, 300)
}

// split turns "github.com/acme/shop" into ("acme", "shop").
func (g *GitHub) split(repository string) (owner, repo string, err error) {
	rest, ok := strings.CutPrefix(repository, g.opts.Host+"/")
	if !ok {
		return "", "", fmt.Errorf("%s: %w (host %s)", repository, ErrNotGitHub, g.opts.Host)
	}
	owner, repo, ok = strings.Cut(strings.TrimSuffix(rest, ".git"), "/")
	if !ok || !githubName(owner) || !githubName(repo) {
		return "", "", fmt.Errorf("%s: %w: not host/owner/repo", repository, ErrNotGitHub)
	}
	return owner, repo, nil
}

// githubName says whether s can be a GitHub owner or repository name:
// letters, digits, '-', '_' and '.', but not "." or "..", which would move
// the API path the token is sent to once the URL is resolved.
func githubName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	})
}

// post sends body as JSON to the API path, retrying network errors, 5xx and
// 429 with backoff while ctx lasts.
func (g *GitHub) post(ctx context.Context, path string, body any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	endpoint := g.api.JoinPath(path).String()
	var last error
	for attempt := 1; attempt <= g.opts.Attempts; attempt++ {
		if attempt > 1 {
			wait := time.Duration(1<<(attempt-2)) * 500 * time.Millisecond
			select {
			case <-ctx.Done():
				return fmt.Errorf("after %d attempt(s): %w (last: %w)", attempt-1, ctx.Err(), last)
			case <-time.After(wait):
			}
		}
		last = g.once(ctx, endpoint, payload)
		if last == nil || errors.Is(last, ErrRejected) {
			return last
		}
		g.logger.Warn("GitHub request failed", "url", endpoint, "attempt", attempt, "err", last)
	}
	return fmt.Errorf("after %d attempts: %w", g.opts.Attempts, last)
}

func (g *GitHub) once(ctx context.Context, endpoint string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("Authorization", "Bearer "+g.opts.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "rampart-scanner")
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("POST %s: %s: %s", endpoint, resp.Status, strings.TrimSpace(string(msg)))
	default:
		return fmt.Errorf("%w: POST %s: %s: %s", ErrRejected, endpoint, resp.Status, strings.TrimSpace(string(msg)))
	}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
