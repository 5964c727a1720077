package sampleimage

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Username and Password, when set, are required as HTTP basic auth on
	// every /v2/ request (answered with a Basic challenge, as
	// Distribution's htpasswd auth does).
	Username, Password string

	// OnManifestPut, when set, is called after each successful manifest
	// push: the hook a registry's push notifications hang off.
	OnManifestPut func(ManifestPut)

	Logger *slog.Logger
}

// ManifestPut describes one successful manifest push.
type ManifestPut struct {
	Repository string // e.g. team/app
	Reference  string // the tag or digest pushed to
	Digest     string // sha256:… of the manifest
	MediaType  string
	Size       int64
}

// Registry is go-containerregistry's in-memory OCI registry served over plain
// HTTP on 127.0.0.1.
type Registry struct {
	server *httptest.Server
	// Host is host:port, e.g. 127.0.0.1:41234. Loopback registries are
	// reached over plain HTTP by go-containerregistry and Trivy.
	Host string
	auth authn.Authenticator
}

// StartRegistry starts a registry on a free loopback port. Close stops it.
func StartRegistry(opts RegistryOptions) *Registry {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if opts.OnManifestPut != nil {
		h = notifyManifestPuts(h, opts.OnManifestPut)
	}
	auth := authn.Anonymous
	if opts.Username != "" {
		h = requireBasicAuth(h, opts.Username, opts.Password)
		auth = &authn.Basic{Username: opts.Username, Password: opts.Password}
	}
	srv := httptest.NewServer(h)
	r := &Registry{server: srv, Host: srv.Listener.Addr().String(), auth: auth}
	logger.Debug("in-memory registry started", "registry", r.Host)
	return r
}

// Close stops the registry.
func (r *Registry) Close() { r.server.Close() }

// Pushed is where an image landed.
type Pushed struct {
	Repository string // host/repository
	Tag        string
	Digest     string // manifest digest, sha256:…
}

// Ref is the digest reference, host/repository@sha256:….
func (p Pushed) Ref() string { return p.Repository + "@" + p.Digest }

// TagRef is the tag reference, host/repository:tag.
func (p Pushed) TagRef() string { return p.Repository + ":" + p.Tag }

// Push uploads img as repo:tag (with the registry's credentials, if any) and
// returns its digest.
func (r *Registry) Push(ctx context.Context, repo, tag string, img v1.Image) (Pushed, error) {
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Host, repo, tag))
	if err != nil {
		return Pushed{}, fmt.Errorf("parse reference: %w", err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(r.auth)); err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return Pushed{}, fmt.Errorf("digest of %s: %w", ref, err)
	}
	return Pushed{Repository: ref.Context().Name(), Tag: tag, Digest: d.String()}, nil
}

// PushIndex uploads a multi-platform image index of the given linux/amd64
// image (with img as its only manifest) as repo:tag and returns the index
// digest.
func (r *Registry) PushIndex(ctx context.Context, repo, tag string, img v1.Image) (Pushed, error) {
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", r.Host, repo, tag))
	if err != nil {
		return Pushed{}, fmt.Errorf("parse reference: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
	})
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuth(r.auth)); err != nil {
		return Pushed{}, fmt.Errorf("push index %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return Pushed{}, fmt.Errorf("digest of %s: %w", ref, err)
	}
	return Pushed{Repository: ref.Context().Name(), Tag: tag, Digest: d.String()}, nil
}

// BuildAndPush builds spec and pushes it as repo:tag.
func (r *Registry) BuildAndPush(ctx context.Context, repo, tag string, spec Image) (Pushed, error) {
	img, err := spec.Build()
	if err != nil {
		return Pushed{}, err
	}
	return r.Push(ctx, repo, tag, img)
}

func requireBasicAuth(next http.Handler, user, pass string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="sampleimage"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

var manifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)

func notifyManifestPuts(next http.Handler, notify func(ManifestPut)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m := manifestPath.FindStringSubmatch(req.URL.Path)
		if req.Method != http.MethodPut || m == nil {
			next.ServeHTTP(w, req)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, req)
		if rec.status == http.StatusCreated {
			notify(ManifestPut{
				Repository: m[1],
				Reference:  m[2],
				Digest:     w.Header().Get("Docker-Content-Digest"),
				MediaType:  req.Header.Get("Content-Type"),
				Size:       req.ContentLength,
			})
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
