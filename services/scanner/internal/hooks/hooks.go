// Package hooks decodes the webhooks the scanner receives: registry push
// notifications (CNCF Distribution, Harbor default and CloudEvents formats)
// and Git events (GitHub push and pull_request, GitLab push).
//
// The parsers are pure: bytes and headers in, a typed ArtifactPush or Commit
// out, or an error wrapping one of the sentinels below, which the HTTP layer
// maps to a status (ErrTooLarge 413, ErrUnauthorized 401, ErrMalformed and
// ErrUnsupported 400, ErrIgnored 202 with nothing published).
//
// Decoding is strict where it matters and tolerant where providers evolve:
// the body must be exactly one JSON value of the right shape, every field the
// scanner uses is type-checked and validated (digests, repository names,
// hosts, commit SHAs, refs), and the body size is capped. Fields the scanner
// does not read are ignored, because providers add fields without versioning
// their payloads (Distribution's docs ask receivers not to be picky).
package hooks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// Sentinel errors; parsers wrap them with the precise reason. They are the
// platform's webhook errors, so webhook.Status maps them to HTTP statuses.
var (
	// ErrTooLarge: the body exceeds the size limit (HTTP 413).
	ErrTooLarge = webhook.ErrTooLarge
	// ErrUnauthorized: missing or wrong signature, token or credentials
	// (HTTP 401).
	ErrUnauthorized = webhook.ErrUnauthorized
	// ErrMalformed: the body is not valid JSON of the expected shape, or a
	// field the scanner needs is missing or invalid (HTTP 400).
	ErrMalformed = webhook.ErrMalformed
	// ErrUnsupported: a content type or event kind this endpoint does not
	// accept (HTTP 400).
	ErrUnsupported = webhook.ErrUnsupported
	// ErrIgnored: a valid event that asks for nothing, e.g. only layer
	// pushes, a pull, a branch deletion or a closed pull request (HTTP 202,
	// nothing published).
	ErrIgnored = webhook.ErrIgnored
)

// Body size limits: registry notifications are small; GitHub caps payloads at
// 25 MB, but a push with thousands of commits still fits in a few MB.
const (
	MaxRegistryBody = 1 << 20
	MaxGitBody      = 5 << 20
)

// ArtifactPush is one image manifest (or index) pushed to a registry.
type ArtifactPush struct {
	// ID is derived from the registry's event, so a redelivered webhook
	// yields the same ID (the publisher's de-duplication key).
	ID         string
	Source     string // SourceDistribution, SourceHarbor or SourceHarborCloudEvents
	Registry   string // host[:port] the image is pulled from
	Repository string // e.g. library/busybox
	Digest     string // manifest digest, sha256:…
	Tag        string // empty when pushed by digest
	MediaType  string // manifest media type, if the registry said
	PushedAt   time.Time
	Actor      string // who pushed, if the registry said
}

// Sources of artifact pushes.
const (
	SourceDistribution      = "distribution"
	SourceHarbor            = "harbor"
	SourceHarborCloudEvents = "harbor-cloudevents"
)

// Ref is the pullable digest reference, host/repository@sha256:….
func (a ArtifactPush) Ref() string { return a.Registry + "/" + a.Repository + "@" + a.Digest }

// PURL is the package URL of the pushed image (purl "oci" type), e.g.
// pkg:oci/app@sha256%3Afea8…?repository_url=registry.example.com%3A5000/team/app&tag=v1.4.2:
// the last path segment as name, the digest as version, the full location as
// repository_url and the tag if known.
func (a ArtifactPush) PURL() string {
	name := a.Repository[strings.LastIndex(a.Repository, "/")+1:]
	s := "pkg:oci/" + purlEscape(name) + "@" + purlEscape(a.Digest) +
		"?repository_url=" + purlEscape(a.Registry+"/"+a.Repository)
	if a.Tag != "" {
		s += "&tag=" + purlEscape(a.Tag)
	}
	return s
}

// purlEscape percent-encodes all but unreserved characters and "/", as the
// purl spec's examples do (sha256%3A…, repository_url=gcr.io/distroless/static).
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Commit is a change to scan: a push or a pull request head.
type Commit struct {
	// ID is derived from the provider's event (repository, ref, SHAs,
	// action), so a redelivery yields the same ID.
	ID         string
	Source     string // SourceGitHub or SourceGitLab
	Event      string // push, tag_push or pull_request
	Repository string // owner/name (GitHub) or path_with_namespace (GitLab)
	RepoURL    string // HTTPS clone URL
	SHA        string // the commit to scan
	Ref        string // refs/heads/…, refs/tags/…, or refs/pull/N/head
	BaseRef    string // pull requests: the branch it targets
	PRNumber   int    // pull requests only
	Action     string // pull requests: opened, synchronize, reopened
	Sender     string
}

// Sources of commits.
const (
	SourceGitHub = "github"
	SourceGitLab = "gitlab"
)

// stableID hashes the parts that identify an event at its source.
func stableID(source string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return source + "-" + hex.EncodeToString(h.Sum(nil))[:32]
}

var (
	digestRE = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
	// Distribution's repository name grammar: lower-case path components
	// separated by "/", each alphanumeric runs joined by ".", "_", "__" or
	// dashes.
	repoRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// host[:port]: a DNS name or IPv4 address, or a bracketed IPv6 address.
	hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
	shaRE  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	// A Git hosting path: "/"-separated segments of letters, digits, "."
	// "_" and "-" (GitHub's owner/name, GitLab's path_with_namespace).
	gitRepoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$`)
)

// maxGitRepo bounds a Git repository path; GitHub's are at most 140
// characters, GitLab's are nested groups of at most 255 each.
const maxGitRepo = 512

func checkDigest(field, v string) error {
	if !digestRE.MatchString(v) {
		return fmt.Errorf("%w: %s: %q is not a sha256 or sha512 digest", ErrMalformed, field, v)
	}
	return nil
}

func checkRepository(field, v string) error {
	if len(v) > 255 || !repoRE.MatchString(v) {
		return fmt.Errorf("%w: %s: %q is not a repository name", ErrMalformed, field, v)
	}
	return nil
}

// checkGitRepo checks a repository path named by a Git webhook: bounded,
// and only the characters GitHub and GitLab allow, so it can name nothing
// else (no "..", no white space, no control characters).
func checkGitRepo(field, v string) error {
	shown := v
	if len(shown) > 64 {
		shown = fmt.Sprintf("%s… (%d bytes)", shown[:64], len(v))
	}
	if len(v) > maxGitRepo || !gitRepoRE.MatchString(v) || strings.Contains(v, "..") {
		return fmt.Errorf("%w: %s: %q is not a repository path (owner/name, at most %d characters)", ErrMalformed, field, shown, maxGitRepo)
	}
	return nil
}

func checkTag(field, v string) error {
	if v != "" && !tagRE.MatchString(v) {
		return fmt.Errorf("%w: %s: %q is not a tag", ErrMalformed, field, v)
	}
	return nil
}

func checkHost(field, v string) error {
	if len(v) > 255 || !hostRE.MatchString(v) {
		return fmt.Errorf("%w: %s: %q is not a registry host", ErrMalformed, field, v)
	}
	return nil
}

func checkSHA(field, v string) error {
	if !shaRE.MatchString(v) {
		return fmt.Errorf("%w: %s: %q is not a commit SHA", ErrMalformed, field, v)
	}
	return nil
}

func checkRef(field, v string) error {
	if !strings.HasPrefix(v, "refs/") || len(v) > 1024 || strings.ContainsAny(v, " ~^:?*[\\\x00\x7f") || strings.Contains(v, "..") {
		return fmt.Errorf("%w: %s: %q is not a git ref", ErrMalformed, field, v)
	}
	return nil
}

// checkCloneURL accepts http(s) URLs with a host.
func checkCloneURL(field, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%w: %s: %q is not an http(s) clone URL", ErrMalformed, field, v)
	}
	return nil
}

// zeroSHA reports an all-zero SHA, which providers use for "no commit"
// (the before of a new branch, the after of a deleted one).
func zeroSHA(s string) bool { return s != "" && strings.Trim(s, "0") == "" }
