// Package ingress is the scanner's HTTP intake: registry push notifications
// (POST /hooks/registry) become artifact-pushed events and Git pushes and
// pull requests (POST /hooks/git) become commit events.
//
// Every request is authenticated per source, size-limited and decoded
// strictly (pkg/runtime/webhook, internal/hooks) before anything is published; a request that
// fails publishes nothing. Event ids derive from the provider's event, so a
// redelivered webhook is one event (JetStream drops the repeat by
// Nats-Msg-Id).
package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/scanner/internal/hooks"
)

// Publisher publishes one event; *bus.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, ev cloudevents.Event) (*jetstream.PubAck, error)
}

// Config says how each webhook source authenticates. Secrets are references
// (env:NAME or file:PATH) resolved once by New. A source whose credential is
// not configured refuses every request with 401.
type Config struct {
	// Registry webhooks: a bearer token, a basic-auth pair, or a verbatim
	// Authorization header value (Harbor's auth_header), whichever the
	// registry is configured to send. The first one set is used.
	RegistryToken    policy.Secret
	RegistryUser     string
	RegistryPassword policy.Secret
	RegistryHeader   policy.Secret
	// GitHubSecret keys X-Hub-Signature-256 (HMAC-SHA256 of the body).
	GitHubSecret policy.Secret
	// GitLabToken is compared with X-Gitlab-Token.
	GitLabToken policy.Secret
	// Source is the CloudEvents source of the published events.
	Source string
	// MaxPushes caps the artifacts of one registry delivery (default
	// DefaultMaxPushes): each becomes an image pull and a scan.
	MaxPushes int
}

// DefaultMaxPushes is the default cap on the artifacts of one registry
// delivery; a delivery over it is refused whole (413), nothing published.
const DefaultMaxPushes = 100

// Handler serves the webhook routes.
type Handler struct {
	pub       Publisher
	source    string
	maxPushes int
	registry  webhook.Auth
	github    []byte
	gitlab    string
	log       *slog.Logger
	requests  *prometheus.CounterVec
}

// New resolves the configured secrets and returns the handler. reg may be
// nil (metrics are then not exported).
func New(cfg Config, pub Publisher, reg prometheus.Registerer, logger *slog.Logger) (*Handler, error) {
	if pub == nil {
		return nil, errors.New("ingress: no publisher")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{pub: pub, source: cfg.Source, maxPushes: cfg.MaxPushes, log: logger}
	if h.source == "" {
		h.source = "/rampart/scanner"
	}
	if h.maxPushes <= 0 {
		h.maxPushes = DefaultMaxPushes
	}
	resolve := func(what string, s policy.Secret) (string, error) {
		if s.IsZero() {
			return "", nil
		}
		v, err := s.Resolve()
		if err != nil {
			return "", fmt.Errorf("ingress: %s: %w", what, err)
		}
		return v, nil
	}
	var err error
	switch {
	case !cfg.RegistryToken.IsZero():
		h.registry.Bearer, err = resolve("registry webhook token", cfg.RegistryToken)
	case cfg.RegistryUser != "":
		h.registry.Username = cfg.RegistryUser
		h.registry.Password, err = resolve("registry webhook password", cfg.RegistryPassword)
		if err == nil && h.registry.Password == "" {
			err = errors.New("ingress: registry webhook user set without a password")
		}
	case !cfg.RegistryHeader.IsZero():
		h.registry.Header, err = resolve("registry webhook header", cfg.RegistryHeader)
	}
	if err != nil {
		return nil, err
	}
	gh, err := resolve("GitHub webhook secret", cfg.GitHubSecret)
	if err != nil {
		return nil, err
	}
	h.github = []byte(gh)
	if h.gitlab, err = resolve("GitLab webhook token", cfg.GitLabToken); err != nil {
		return nil, err
	}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_scanner_webhook_requests_total",
		Help: "Webhook requests by hook (registry, git) and HTTP status code.",
	}, []string{"hook", "code"})
	if reg != nil {
		if err := reg.Register(h.requests); err != nil {
			return nil, fmt.Errorf("ingress: register metrics: %w", err)
		}
	}
	return h, nil
}

// Routes registers POST /hooks/registry and POST /hooks/git.
func (h *Handler) Routes(mux *http.ServeMux) {
	// Each push starts a release's trace: its events carry the span.
	mux.Handle("POST /hooks/registry", webhook.Traced("POST /hooks/registry", h.serveRegistry))
	mux.Handle("POST /hooks/git", webhook.Traced("POST /hooks/git", h.serveGit))
}

// problem is a failed request: its status and the reason sent back.
type problem struct {
	status int
	reason string
}

func (p *problem) Error() string { return p.reason }

// statusOf is the HTTP status of a failed request: a problem's own, else
// the webhook sentinel's (see webhook.Status).
func statusOf(err error) int {
	if p, ok := errors.AsType[*problem](err); ok {
		return p.status
	}
	return webhook.Status(err)
}

// response is the JSON body of every answer.
type response struct {
	Published []string `json:"published,omitempty"` // event ids
	Ignored   string   `json:"ignored,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (h *Handler) reply(w http.ResponseWriter, hook string, status int, body response) {
	h.requests.WithLabelValues(hook, strconv.Itoa(status)).Inc()
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-scanner"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// fail answers a failed request. Authentication failures get a fixed
// message, so a probe learns nothing about what was wrong.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, hook string, err error) {
	status := statusOf(err)
	if status == http.StatusAccepted {
		h.log.Debug("webhook ignored", "hook", hook, "reason", err.Error())
		h.reply(w, hook, status, response{Ignored: err.Error()})
		return
	}
	msg := err.Error()
	switch status {
	case http.StatusUnauthorized:
		h.log.Warn("webhook refused", "hook", hook, "remote", r.RemoteAddr, "err", err)
		msg = "authentication failed"
	case http.StatusInternalServerError, http.StatusServiceUnavailable:
		h.log.Error("webhook failed", "hook", hook, "err", err)
	case http.StatusRequestEntityTooLarge:
		h.log.Warn("webhook too large", "hook", hook, "remote", r.RemoteAddr, "err", err)
	default:
		h.log.Info("webhook rejected", "hook", hook, "status", status, "err", err)
	}
	h.reply(w, hook, status, response{Error: msg})
}

// mediaType is the request's Content-Type without parameters, lower-cased.
func mediaType(r *http.Request) string { return webhook.MediaType(r.Header.Get("Content-Type")) }

func unsupportedMedia(got string, want ...string) error {
	return &problem{http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q, want %s", got, strings.Join(want, " or "))}
}

// publishAll publishes events built in full beforehand, so a request that
// fails validation publishes nothing. An event the bus can never take is
// the sender's problem: 413 over its maximum payload (the limit named), 400
// for a subject it refuses. Any other failure is 503: the provider retries
// and the repeats of what did go out are dropped by id.
func (h *Handler) publishAll(ctx context.Context, evs []cloudevents.Event) ([]string, error) {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		if _, err := h.pub.Publish(ctx, ev); err != nil {
			switch {
			case errors.Is(err, bus.ErrTooLarge):
				return nil, &problem{http.StatusRequestEntityTooLarge, fmt.Sprintf("event %s: %v", ev.ID(), err)}
			case errors.Is(err, bus.ErrInvalidSubject):
				return nil, &problem{http.StatusBadRequest, fmt.Sprintf("event %s: %v", ev.ID(), err)}
			}
			h.log.Error("publish", "event", ev.ID(), "err", err)
			return nil, &problem{http.StatusServiceUnavailable, "event bus unavailable, retry later"}
		}
		ids = append(ids, ev.ID())
	}
	return ids, nil
}

// ChainID is the correlation id of the release a push starts: a UUID
// derived from the push event's id, so a redelivery keeps its chain.
func ChainID(eventID string) string {
	return uuid.NewSHA1(chainNamespace, []byte(eventID)).String()
}

// chainNamespace is the UUIDv5 namespace of chain ids minted by the scanner.
var chainNamespace = uuid.MustParse("6f1d7c2e-3b0a-5e47-9c61-2d8a4f0b7e13")

// serveRegistry turns a registry notification into one artifact-pushed event
// per manifest or index push. The parser is chosen by media type:
// Distribution's envelope type, or Harbor's application/json (Default) and
// application/cloudevents+json (CloudEvents) formats.
func (h *Handler) serveRegistry(w http.ResponseWriter, r *http.Request) {
	const hook = "registry"
	if err := h.registry.Verify(r.Header); err != nil {
		h.fail(w, r, hook, err)
		return
	}
	var parse func(string, []byte) ([]hooks.ArtifactPush, error)
	switch mt := mediaType(r); mt {
	case hooks.DistributionMediaType:
		parse = hooks.ParseDistribution
	case "application/json", "application/cloudevents+json":
		parse = hooks.ParseHarbor
	default:
		h.fail(w, r, hook, unsupportedMedia(mt, hooks.DistributionMediaType, "application/json (Harbor)", "application/cloudevents+json (Harbor)"))
		return
	}
	body, err := webhook.ReadBody(r, hooks.MaxRegistryBody)
	if err != nil {
		h.fail(w, r, hook, err)
		return
	}
	pushes, err := parse(r.Header.Get("Content-Type"), body)
	if err != nil {
		h.fail(w, r, hook, err)
		return
	}
	if len(pushes) > h.maxPushes {
		h.fail(w, r, hook, &problem{http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"%d artifacts in one delivery, over the limit of %d (the scanner's --max-pushes-per-delivery): nothing was published",
			len(pushes), h.maxPushes)})
		return
	}
	evs := make([]cloudevents.Event, 0, len(pushes))
	for i, p := range pushes {
		ev, err := h.artifactEvent(p)
		if err != nil {
			h.fail(w, r, hook, &problem{http.StatusBadRequest, fmt.Sprintf("push %d: %v", i, err)})
			return
		}
		evs = append(evs, ev)
	}
	ids, err := h.publishAll(r.Context(), evs)
	if err != nil {
		h.fail(w, r, hook, err)
		return
	}
	for _, p := range pushes {
		h.log.Info("artifact pushed", "source", p.Source, "image", p.Registry+"/"+p.Repository, "digest", p.Digest, "tag", p.Tag)
	}
	h.reply(w, hook, http.StatusAccepted, response{Published: ids})
}

// artifactEvent builds the artifact-pushed event of one push. The purl is
// events.NewOCI's, the form every service agrees on.
func (h *Handler) artifactEvent(p hooks.ArtifactPush) (cloudevents.Event, error) {
	oci, err := events.NewOCI(p.Registry+"/"+p.Repository, p.Digest, p.Tag)
	if err != nil {
		return cloudevents.Event{}, err
	}
	return events.NewArtifactPushed(
		events.Meta{ID: p.ID, Source: h.source, Time: p.PushedAt, ChainID: ChainID(p.ID)},
		events.Artifact{Purl: oci.String(), Registry: p.Registry, Repository: p.Repository,
			Digest: p.Digest, Tag: p.Tag, User: p.Actor})
}

// serveGit turns a GitHub push or pull_request, or a GitLab push, into a
// commit event. The provider is told by its event header; the credential is
// checked before the media type and before the payload is read as JSON.
func (h *Handler) serveGit(w http.ResponseWriter, r *http.Request) {
	const hook = "git"
	body, err := webhook.ReadBody(r, hooks.MaxGitBody)
	if err != nil {
		h.fail(w, r, hook, err)
		return
	}
	var c hooks.Commit
	mt := mediaType(r)
	switch {
	case r.Header.Get(hooks.GitHubEventHeader) != "":
		if err := webhook.VerifySignature(h.github, body, r.Header.Get(hooks.GitHubSignatureHeader), hooks.GitHubSignatureHeader); err != nil {
			h.fail(w, r, hook, err)
			return
		}
		if mt != "application/json" && mt != "application/x-www-form-urlencoded" {
			h.fail(w, r, hook, unsupportedMedia(mt, "application/json", "application/x-www-form-urlencoded"))
			return
		}
		c, err = hooks.ParseGitHub(r.Header, body, h.github)
	case r.Header.Get(hooks.GitLabEventHeader) != "":
		if err := webhook.VerifyToken(h.gitlab, r.Header.Get(hooks.GitLabTokenHeader), hooks.GitLabTokenHeader); err != nil {
			h.fail(w, r, hook, err)
			return
		}
		if mt != "application/json" {
			h.fail(w, r, hook, unsupportedMedia(mt, "application/json"))
			return
		}
		c, err = hooks.ParseGitLab(r.Header, body, h.gitlab)
	default:
		err = &problem{http.StatusBadRequest, fmt.Sprintf("neither %s nor %s is set: not a GitHub or GitLab webhook", hooks.GitHubEventHeader, hooks.GitLabEventHeader)}
	}
	if err != nil {
		h.fail(w, r, hook, err)
		return
	}
	ev, err := h.commitEvent(c)
	if err != nil {
		h.fail(w, r, hook, &problem{http.StatusBadRequest, err.Error()})
		return
	}
	ids, err := h.publishAll(r.Context(), []cloudevents.Event{ev})
	if err != nil {
		h.fail(w, r, hook, err)
		return
	}
	h.log.Info("commit received", "source", c.Source, "repository", c.Repository, "sha", c.SHA, "ref", c.Ref, "pull_request", c.PRNumber)
	h.reply(w, hook, http.StatusAccepted, response{Published: ids})
}

// commitEvent builds the commit event of c. The repository is named with
// its host (github.com/acme/shop), as events.Commit expects.
func (h *Handler) commitEvent(c hooks.Commit) (cloudevents.Event, error) {
	repo := c.Repository
	if u, err := url.Parse(c.RepoURL); err == nil && u.Host != "" {
		repo = u.Host + "/" + c.Repository
	}
	return events.NewCommit(
		events.Meta{ID: c.ID, Source: h.source, ChainID: ChainID(c.ID)},
		events.Commit{Repository: repo, RepoURL: c.RepoURL, SHA: c.SHA, Ref: c.Ref, Author: c.Sender, PullRequest: c.PRNumber})
}
