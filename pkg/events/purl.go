package events

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// OCI is an image named by a package URL of type oci:
// pkg:oci/<name>@<digest>?repository_url=<registry>/<repository>&tag=<tag>.
// Artifacts travel by this id, so scanner and deployer must agree on it.
type OCI struct {
	Name          string // last path element of the repository
	Digest        string // sha256:…
	RepositoryURL string // registry host[:port]/repository
	Tag           string
}

// Repository is the repository part of RepositoryURL (without the registry).
func (o OCI) Repository() string {
	_, repo, _ := strings.Cut(o.RepositoryURL, "/")
	return repo
}

// Ref is the pullable reference: registry/repository@digest.
func (o OCI) Ref() string { return o.RepositoryURL + "@" + o.Digest }

// String is the purl.
func (o OCI) String() string {
	s := "pkg:oci/" + purlEscape(o.Name) + "@" + purlEscape(o.Digest) + "?repository_url=" + purlEscape(o.RepositoryURL)
	if o.Tag != "" {
		s += "&tag=" + purlEscape(o.Tag)
	}
	return s
}

// NewOCI names the image digest in repositoryURL (registry/repository).
func NewOCI(repositoryURL, digest, tag string) (OCI, error) {
	if !strings.Contains(repositoryURL, "/") {
		return OCI{}, fmt.Errorf("repository %q has no registry host", repositoryURL)
	}
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		return OCI{}, fmt.Errorf("digest %q is not sha256:<64 hex>", digest)
	}
	name := repositoryURL[strings.LastIndex(repositoryURL, "/")+1:]
	return OCI{Name: name, Digest: digest, RepositoryURL: repositoryURL, Tag: tag}, nil
}

// ParseOCI reads a pkg:oci purl.
func ParseOCI(purl string) (OCI, error) {
	rest, ok := strings.CutPrefix(purl, "pkg:oci/")
	if !ok {
		return OCI{}, fmt.Errorf("purl %q is not of type oci", purl)
	}
	path, query, _ := strings.Cut(rest, "?")
	name, version, ok := strings.Cut(path, "@")
	if !ok {
		return OCI{}, fmt.Errorf("purl %q has no @digest", purl)
	}
	var err error
	o := OCI{}
	if o.Name, err = url.PathUnescape(name); err != nil {
		return OCI{}, fmt.Errorf("purl %q: name: %w", purl, err)
	}
	if o.Digest, err = url.PathUnescape(version); err != nil {
		return OCI{}, fmt.Errorf("purl %q: digest: %w", purl, err)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return OCI{}, fmt.Errorf("purl %q: qualifiers: %w", purl, err)
	}
	o.RepositoryURL, o.Tag = q.Get("repository_url"), q.Get("tag")
	if o.RepositoryURL == "" {
		return OCI{}, errors.New("purl " + purl + " has no repository_url")
	}
	if _, err := NewOCI(o.RepositoryURL, o.Digest, o.Tag); err != nil {
		return OCI{}, fmt.Errorf("purl %q: %w", purl, err)
	}
	return o, nil
}

// purlEscape percent-encodes all but unreserved characters and "/", as the
// purl specification's examples do (sha256%3A…).
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
