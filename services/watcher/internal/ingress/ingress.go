// Package ingress is the watcher's alert ingress: POST /hooks/alertmanager
// (Alertmanager's webhook, version 4) and POST /hooks/siem (Rampart's SIEM
// alert, HMAC-signed). A firing alert about an application's live canary
// becomes an anomaly against it at once; any other becomes an anomaly with
// target none, recorded and not acted on.
//
// Every request is authenticated, size-limited and decoded
// (pkg/runtime/webhook, internal/hooks) before anything is published; a
// request that fails publishes nothing. Anomaly ids derive from the alert,
// and the ingress remembers what each alert became, so a redelivery is the
// same decision.
package ingress

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/anomaly"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

// Webhook paths.
const (
	PathAlertmanager = "/hooks/alertmanager"
	PathSIEM         = "/hooks/siem"
)

// MaxBody is the default limit of a webhook body. Alertmanager batches a
// group's alerts into one request; a thousand alerts with labels and
// annotations fit well within it.
const MaxBody = 1 << 20

// DefaultMaxAlerts is the default cap on the alerts of one Alertmanager
// delivery: each firing alert can become an anomaly, so a delivery over the
// cap is refused whole (413) rather than fanned out.
const DefaultMaxAlerts = 100

// Config configures an Ingress.
type Config struct {
	// Live is what is live: alerts are matched against it.
	Live *live.Set
	// App returns an application's policy (its SIEM rule and environment).
	App func(name string) (policy.App, bool)
	// Ready reports whether the watcher can take alerts; until it can,
	// requests are answered 503 so that the sender retries.
	Ready func() error
	// Alertmanager is the credential /hooks/alertmanager requires; zero
	// rejects every request.
	Alertmanager webhook.Auth
	// SIEMSecret keys /hooks/siem signatures; empty rejects every request.
	SIEMSecret []byte
	// MaxBody bounds webhook bodies (default MaxBody).
	MaxBody int64
	// MaxAlerts caps the alerts of one Alertmanager delivery (default
	// DefaultMaxAlerts).
	MaxAlerts int
	// Evaluations counts the SIEM rule's breaches (analysis.NewEvaluations).
	Evaluations *prometheus.CounterVec
	Publisher   *anomaly.Publisher
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Ingress serves the webhooks.
type Ingress struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	alerts   *alertMemory
}

// New checks cfg and registers rampart_watcher_webhook_requests_total.
func New(cfg Config) (*Ingress, error) {
	if cfg.Live == nil || cfg.App == nil || cfg.Ready == nil || cfg.Publisher == nil || cfg.Evaluations == nil {
		return nil, errors.New("ingress: the live set, a policy lookup, a readiness check, a publisher and an evaluations counter are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = MaxBody
	}
	if cfg.MaxAlerts <= 0 {
		cfg.MaxAlerts = DefaultMaxAlerts
	}
	in := &Ingress{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), alerts: newAlertMemory(time.Hour, 10000),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_watcher_webhook_requests_total",
			Help: "Webhook requests by hook and HTTP status code.",
		}, []string{"hook", "code"})}
	if err := cfg.Registerer.Register(in.requests); err != nil {
		return nil, fmt.Errorf("ingress metrics: %w", err)
	}
	in.mux.Handle("POST "+PathAlertmanager, in.hook("alertmanager", in.alertmanager))
	in.mux.Handle("POST "+PathSIEM, in.hook("siem", in.siem))
	return in, nil
}

// ServeHTTP serves the webhooks.
func (in *Ingress) ServeHTTP(rw http.ResponseWriter, r *http.Request) { in.mux.ServeHTTP(rw, r) }

// pending is one anomaly a request will publish.
type pending struct {
	key    string // the alert itself: a redelivery has the same key
	id     string
	canary *live.Canary
	a      events.Anomaly
}

// Response is the body of a webhook's answer.
type Response struct {
	Published []string `json:"published,omitempty"` // anomaly ids
	Ignored   []string `json:"ignored,omitempty"`   // why each ignored alert was
	// Duplicates are the anomaly ids of alerts delivered before.
	Duplicates []string `json:"duplicates,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// errUnavailable: the watcher cannot take alerts yet (HTTP 503, so the
// sender retries).
var errUnavailable = errors.New("watcher is not ready")

// statusError is a refusal with its own HTTP status.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// statusOf is the HTTP status of a failed request: a statusError's own,
// else the webhook sentinel's (see webhook.Status).
func statusOf(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.code
	}
	return webhook.Status(err)
}

// publishStatus is the status of a failed publish: an anomaly the bus can
// never take is the sender's problem (413 over the maximum payload, 400 for
// a subject it refuses) and retrying will not help; anything else is 503.
func publishStatus(err error) int {
	switch {
	case errors.Is(err, bus.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, bus.ErrInvalidSubject):
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

// hook wraps a webhook: readiness, content type, the body limit, the status
// from the error, the metrics, and publishing only once every alert of the
// request was decoded and matched.
func (in *Ingress) hook(name string, parse func(r *http.Request) ([]pending, []string, error)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var resp Response
		code := http.StatusOK
		defer func() {
			in.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(code)
			_ = json.NewEncoder(rw).Encode(resp)
		}()
		fail := func(c int, err error) {
			code, resp.Error = c, err.Error()
			if c >= http.StatusInternalServerError {
				in.log.Error("webhook failed", "hook", name, "status", c, "err", err)
				return
			}
			in.log.Warn("webhook refused", "hook", name, "status", c, "err", err)
		}
		if in.cfg.Ready() != nil {
			fail(http.StatusServiceUnavailable, errUnavailable)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && webhook.MediaType(ct) != "application/json" {
			fail(http.StatusUnsupportedMediaType, fmt.Errorf("content type %q, want application/json", ct))
			return
		}
		r.Body = http.MaxBytesReader(rw, r.Body, in.cfg.MaxBody)
		todo, ignored, err := parse(r)
		if err != nil {
			fail(statusOf(err), err)
			return
		}
		resp.Ignored = ignored
		for _, p := range todo {
			if id, seen := in.alerts.lookup(p.key, time.Now()); seen {
				resp.Duplicates = append(resp.Duplicates, id)
				continue
			}
			if err := in.cfg.Publisher.Publish(r.Context(), p.id, p.canary, p.a); err != nil {
				// What was published stays: ids are deterministic, so the
				// sender's retry publishes the rest and repeats nothing.
				fail(publishStatus(err), fmt.Errorf("publish anomaly %s: %w", p.id, err))
				return
			}
			in.alerts.remember(p.key, p.id, time.Now())
			resp.Published = append(resp.Published, p.id)
		}
	})
}

// alertmanager authenticates, decodes and matches an Alertmanager
// notification.
func (in *Ingress) alertmanager(r *http.Request) ([]pending, []string, error) {
	if err := in.cfg.Alertmanager.Verify(r.Header); err != nil {
		return nil, nil, err
	}
	body, err := webhook.ReadBody(r, in.cfg.MaxBody)
	if err != nil {
		return nil, nil, err
	}
	msg, err := hooks.ParseAlertmanager(body)
	if err != nil {
		return nil, nil, err
	}
	if n := len(msg.Alerts); n > in.cfg.MaxAlerts {
		return nil, nil, &statusError{http.StatusRequestEntityTooLarge, fmt.Errorf(
			"%d alerts in one delivery, over the limit of %d (the watcher's --max-alerts-per-delivery): nothing was published; "+
				"set max_alerts in Alertmanager's webhook_config, or group alerts more finely", n, in.cfg.MaxAlerts)}
	}
	var todo []pending
	var ignored []string
	for _, al := range msg.Alerts {
		if al.Status != hooks.StatusFiring {
			ignored = append(ignored, al.Fingerprint+": resolved")
			continue
		}
		app := al.Labels["app"]
		if app == "" {
			ignored = append(ignored, al.Fingerprint+": no app label")
			continue
		}
		// The app becomes the anomaly's subject token: a label that is
		// not an application name can name no application.
		if err := events.CheckName("app label", app); err != nil {
			ignored = append(ignored, al.Fingerprint+": "+err.Error())
			continue
		}
		todo = append(todo, in.matchAlert(app, al))
	}
	return todo, ignored, nil
}

// matchAlert makes a firing alert an anomaly: against app's live canary when
// the alert is about the canary (version or track label "canary", or a
// label naming the canary's digest), otherwise recorded with target none.
func (in *Ingress) matchAlert(app string, al hooks.Alert) pending {
	name := al.Labels["alertname"]
	summary := firstOf(al.Annotations, "summary", "description", "message")
	what := strings.TrimSpace(fmt.Sprintf("Alertmanager alert %s: %s", name, summary))
	a := events.Anomaly{
		App: app, Rule: analysis.RuleAlertmanager, Origin: "alertmanager", DetectedAt: time.Now().UTC(),
	}
	idBase := "alertmanager:" + al.Fingerprint + ":" + strconv.FormatInt(al.StartsAt.UnixMilli(), 10)
	c, ok := in.cfg.Live.Canary(app)
	if ok && aboutCanary(al.Labels, c) {
		a.Target, a.Environment, a.ArtifactID, a.RolloutID = events.TargetCanary, c.Environment, c.ArtifactID, c.RolloutID
		a.Description = clip(fmt.Sprintf("%s (firing since %s) on the live canary of %s, step %d at %d%%",
			what, al.StartsAt.UTC().Format(time.RFC3339), app, c.Step, c.Weight))
		return pending{key: idBase, id: idBase + ":" + c.RolloutID, canary: &c, a: a}
	}
	a.Target = events.TargetNone
	a.Environment = in.environment(app, firstOf(al.Labels, "environment", "env"))
	a.Description = clip(fmt.Sprintf("%s (firing since %s) matches no live canary of %s: recorded, not acted on",
		what, al.StartsAt.UTC().Format(time.RFC3339), app))
	return pending{key: idBase, id: idBase + ":none", a: a}
}

// aboutCanary reports whether alert labels name the canary: a version or
// track label "canary", or any label whose value is the canary's digest or
// an image reference pinned to it.
func aboutCanary(labels map[string]string, c live.Canary) bool {
	if labels["version"] == policy.VersionCanary || labels["track"] == policy.VersionCanary {
		return true
	}
	if c.Digest == "" {
		return false
	}
	for _, v := range labels {
		if v == c.Digest || strings.HasSuffix(v, "@"+c.Digest) {
			return true
		}
	}
	return false
}

// siem verifies, decodes and matches a SIEM alert.
func (in *Ingress) siem(r *http.Request) ([]pending, []string, error) {
	body, err := webhook.ReadBody(r, in.cfg.MaxBody)
	if err != nil {
		return nil, nil, err
	}
	if err := webhook.VerifySignature(in.cfg.SIEMSecret, body, r.Header.Get(hooks.SignatureHeader), hooks.SignatureHeader); err != nil {
		return nil, nil, err
	}
	al, err := hooks.ParseSIEM(body)
	if err != nil {
		return nil, nil, err
	}
	what := fmt.Sprintf("SIEM alert %s (%s): %s", al.ID, al.Severity, al.Title)
	if al.Source != "" {
		what += " from " + al.Source
	}
	a := events.Anomaly{App: al.App, Rule: analysis.RuleSIEM, Origin: "siem", DetectedAt: time.Now().UTC()}
	c, live := in.cfg.Live.Canary(al.App)
	p, known := in.cfg.App(al.App)
	// The SIEM rule is on unless the policy names the application and
	// turns it off: a security alert errs on the side of stopping.
	enabled := !known || p.Analysis.SIEM.Enabled
	switch {
	case live && enabled && (al.Digest == "" || al.Digest == c.Digest):
		a.Target, a.Environment, a.ArtifactID, a.RolloutID = events.TargetCanary, c.Environment, c.ArtifactID, c.RolloutID
		a.Description = clip(fmt.Sprintf("%s, at %s, on the live canary of %s, step %d at %d%%",
			what, al.OccurredAt.UTC().Format(time.RFC3339), al.App, c.Step, c.Weight))
		in.cfg.Evaluations.WithLabelValues(analysis.RuleSIEM, string(analysis.Breach)).Inc()
		return []pending{{key: "siem:" + al.ID, id: "siem:" + al.ID + ":" + c.RolloutID, canary: &c, a: a}}, nil, nil
	case live && !enabled:
		a.Description = clip(fmt.Sprintf("%s, at %s: the SIEM rule is off for %s, so its live canary is not stopped; recorded",
			what, al.OccurredAt.UTC().Format(time.RFC3339), al.App))
	default:
		a.Description = clip(fmt.Sprintf("%s, at %s, matches no live canary of %s: recorded, not acted on",
			what, al.OccurredAt.UTC().Format(time.RFC3339), al.App))
	}
	a.Target = events.TargetNone
	a.Environment = in.environment(al.App, al.Environment)
	return []pending{{key: "siem:" + al.ID, id: "siem:" + al.ID + ":none", a: a}}, nil, nil
}

// environment names the environment of an anomaly against nothing live:
// what the alert says, else the policy's, else the live release's.
func (in *Ingress) environment(app, fromAlert string) string {
	if fromAlert != "" {
		return fromAlert
	}
	if p, ok := in.cfg.App(app); ok {
		return p.Environment
	}
	if r, ok := in.cfg.Live.Release(app); ok {
		return r.Environment
	}
	return "unknown"
}

func firstOf(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}

// clip bounds a description taken from an external alert.
func clip(s string) string {
	const limit = 1024
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}
