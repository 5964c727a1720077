package watcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
	"github.com/rampartci/rampart/services/watcher/internal/live"
)

// Webhook paths.
const (
	PathAlertmanager = "/hooks/alertmanager"
	PathSIEM         = "/hooks/siem"
)

// Routes registers the webhooks on mux.
func (w *Watcher) Routes(mux *http.ServeMux) {
	mux.Handle("POST "+PathAlertmanager, w.hook("alertmanager", w.alertmanager))
	mux.Handle("POST "+PathSIEM, w.hook("siem", w.siem))
}

// ServeHTTP serves the webhooks.
func (w *Watcher) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.mux.ServeHTTP(rw, r) }

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

// hook wraps a webhook: readiness, content type, the body limit, the status
// from the error, the metrics, and publishing only once every alert of the
// request was decoded and matched.
func (w *Watcher) hook(name string, parse func(r *http.Request) ([]pending, []string, error)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var resp Response
		code := http.StatusOK
		defer func() {
			w.metrics.webhooks.WithLabelValues(name, strconv.Itoa(code)).Inc()
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(code)
			_ = json.NewEncoder(rw).Encode(resp)
		}()
		fail := func(c int, err error) {
			code, resp.Error = c, err.Error()
			w.log.Warn("webhook refused", "hook", name, "status", c, "err", err)
		}
		if w.Ready(r.Context()) != nil {
			fail(http.StatusServiceUnavailable, errUnavailable)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
				fail(http.StatusUnsupportedMediaType, fmt.Errorf("content type %q, want application/json", ct))
				return
			}
		}
		r.Body = http.MaxBytesReader(rw, r.Body, w.cfg.MaxBody)
		todo, ignored, err := parse(r)
		switch {
		case errors.Is(err, hooks.ErrUnauthorized):
			fail(http.StatusUnauthorized, err)
			return
		case errors.Is(err, hooks.ErrTooLarge):
			fail(http.StatusRequestEntityTooLarge, err)
			return
		case errors.Is(err, hooks.ErrMalformed):
			fail(http.StatusBadRequest, err)
			return
		case err != nil:
			fail(http.StatusInternalServerError, err)
			return
		}
		resp.Ignored = ignored
		for _, p := range todo {
			if id, seen := w.alerts.lookup(p.key, time.Now()); seen {
				resp.Duplicates = append(resp.Duplicates, id)
				continue
			}
			if err := w.publish(r.Context(), p.id, p.canary, p.a); err != nil {
				// What was published stays: ids are deterministic, so the
				// sender's retry publishes the rest and repeats nothing.
				fail(http.StatusServiceUnavailable, fmt.Errorf("publish anomaly %s: %w", p.id, err))
				return
			}
			w.alerts.remember(p.key, p.id, time.Now())
			resp.Published = append(resp.Published, p.id)
		}
	})
}

// alertmanager authenticates, decodes and matches an Alertmanager
// notification.
func (w *Watcher) alertmanager(r *http.Request) ([]pending, []string, error) {
	if err := w.cfg.Alertmanager.Verify(r.Header); err != nil {
		return nil, nil, err
	}
	body, err := hooks.ReadBody(r.Body, w.cfg.MaxBody)
	if err != nil {
		return nil, nil, err
	}
	msg, err := hooks.ParseAlertmanager(body)
	if err != nil {
		return nil, nil, err
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
		todo = append(todo, w.matchAlert(app, al))
	}
	return todo, ignored, nil
}

// matchAlert makes a firing alert an anomaly: against app's live canary when
// the alert is about the canary (version or track label "canary", or a
// label naming the canary's digest), otherwise recorded with target none.
func (w *Watcher) matchAlert(app string, al hooks.Alert) pending {
	name := al.Labels["alertname"]
	summary := firstOf(al.Annotations, "summary", "description", "message")
	what := strings.TrimSpace(fmt.Sprintf("Alertmanager alert %s: %s", name, summary))
	a := events.Anomaly{
		App: app, Rule: analysis.RuleAlertmanager, Origin: "alertmanager", DetectedAt: time.Now().UTC(),
	}
	idBase := "alertmanager:" + al.Fingerprint + ":" + strconv.FormatInt(al.StartsAt.UnixMilli(), 10)
	c, ok := w.live.Canary(app)
	if ok && aboutCanary(al.Labels, c) {
		a.Target, a.Environment, a.ArtifactID, a.RolloutID = events.TargetCanary, c.Environment, c.ArtifactID, c.RolloutID
		a.Description = clip(fmt.Sprintf("%s (firing since %s) on the live canary of %s, step %d at %d%%",
			what, al.StartsAt.UTC().Format(time.RFC3339), app, c.Step, c.Weight))
		return pending{key: idBase, id: idBase + ":" + c.RolloutID, canary: &c, a: a}
	}
	a.Target = events.TargetNone
	a.Environment = w.environment(app, firstOf(al.Labels, "environment", "env"))
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
func (w *Watcher) siem(r *http.Request) ([]pending, []string, error) {
	body, err := hooks.ReadBody(r.Body, w.cfg.MaxBody)
	if err != nil {
		return nil, nil, err
	}
	if err := hooks.VerifySignature(w.cfg.SIEMSecret, body, r.Header.Get(hooks.SignatureHeader)); err != nil {
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
	c, live := w.live.Canary(al.App)
	p, known := w.appPolicy(al.App)
	// The SIEM rule is on unless the policy names the application and
	// turns it off: a security alert errs on the side of stopping.
	enabled := !known || p.Analysis.SIEM.Enabled
	switch {
	case live && enabled && (al.Digest == "" || al.Digest == c.Digest):
		a.Target, a.Environment, a.ArtifactID, a.RolloutID = events.TargetCanary, c.Environment, c.ArtifactID, c.RolloutID
		a.Description = clip(fmt.Sprintf("%s, at %s, on the live canary of %s, step %d at %d%%",
			what, al.OccurredAt.UTC().Format(time.RFC3339), al.App, c.Step, c.Weight))
		w.metrics.evaluations.WithLabelValues(analysis.RuleSIEM, string(analysis.Breach)).Inc()
		return []pending{{key: "siem:" + al.ID, id: "siem:" + al.ID + ":" + c.RolloutID, canary: &c, a: a}}, nil, nil
	case live && !enabled:
		a.Description = clip(fmt.Sprintf("%s, at %s: the SIEM rule is off for %s, so its live canary is not stopped; recorded",
			what, al.OccurredAt.UTC().Format(time.RFC3339), al.App))
	default:
		a.Description = clip(fmt.Sprintf("%s, at %s, matches no live canary of %s: recorded, not acted on",
			what, al.OccurredAt.UTC().Format(time.RFC3339), al.App))
	}
	a.Target = events.TargetNone
	a.Environment = w.environment(al.App, al.Environment)
	return []pending{{key: "siem:" + al.ID, id: "siem:" + al.ID + ":none", a: a}}, nil, nil
}

// environment names the environment of an anomaly against nothing live:
// what the alert says, else the policy's, else the live release's.
func (w *Watcher) environment(app, fromAlert string) string {
	if fromAlert != "" {
		return fromAlert
	}
	if p, ok := w.appPolicy(app); ok {
		return p.Environment
	}
	if r, ok := w.live.Release(app); ok {
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
