package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
	"github.com/rampartci/rampart/services/watcher/internal/ingress"
	"github.com/rampartci/rampart/services/watcher/internal/routertest"
)

const (
	amToken    = "am-token"
	siemSecret = "siem-secret"
	canaryPurl = "pkg:oci/shop@sha256%3A2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae?repository_url=registry.example.com/shop"
	canaryDig  = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	stablePurl = "pkg:oci/shop@sha256%3A0000000000000000000000000000000000000000000000000000000000000000?repository_url=registry.example.com/shop"
)

// harness is a watcher on a real embedded JetStream, with its webhooks
// served over HTTP and a fake router for the shop application.
type harness struct {
	t      testing.TB
	ns     *server.Server
	bus    *bus.Bus
	w      *watcher
	reg    *prometheus.Registry
	http   *httptest.Server
	router *routertest.Router
	policy *policy.Store
}

func newHarness(t testing.TB, provider string, interval time.Duration) *harness {
	t.Helper()
	ns := natstest.Server(t, "")
	h := &harness{t: t, ns: ns, bus: natstest.Bus(t, ns), router: routertest.New(t, "shop")}
	app := h.router.Policy(provider)
	h.policy = policy.StoreOf(&policy.Policy{Version: 1, Apps: []policy.App{app}})
	h.start(interval)
	return h
}

// newAlertHarness is a harness whose shop runs rollout r1's canary at 5%,
// judged only by alerts in practice (an hourly analysis interval).
func newAlertHarness(t testing.TB) *harness {
	t.Helper()
	h := newHarness(t, policy.ProviderScrape, time.Hour)
	h.step("r1", 0, 5)
	h.waitLive("r1", 5)
	return h
}

// start starts a watcher; the previous one, if any, must be stopped.
func (h *harness) start(interval time.Duration) {
	h.t.Helper()
	h.reg = prometheus.NewRegistry()
	w, err := startWatcher(h.t.Context(), config{
		Policy: h.policy, Interval: interval, Alertmanager: webhook.Auth{Bearer: amToken}, SIEMSecret: []byte(siemSecret),
	}, service.Deps{Bus: h.bus, Registerer: h.reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		h.t.Fatal(err)
	}
	h.w = w
	h.http = httptest.NewServer(w)
	h.t.Cleanup(func() { h.stop() })
}

func (h *harness) stop() {
	if h.w == nil {
		return
	}
	h.http.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.w.stop(ctx); err != nil {
		h.t.Errorf("stop: %v", err)
	}
	h.w = nil
}

// step publishes a canary step of rollout for shop and returns it.
func (h *harness) step(rollout string, n, weight int) cloudevents.Event {
	h.t.Helper()
	ev, err := events.NewCanaryStepped(events.Meta{Source: "/rampart/deployer", App: "shop", ChainID: "chain-" + rollout},
		events.CanaryStep{RolloutID: rollout, App: "shop", Environment: "prod", ArtifactID: canaryPurl, Stable: stablePurl, Step: n, Weight: weight})
	if err != nil {
		h.t.Fatal(err)
	}
	h.publish(ev)
	return ev
}

func (h *harness) publish(ev cloudevents.Event) {
	h.t.Helper()
	if _, err := h.bus.Publish(h.t.Context(), ev); err != nil {
		h.t.Fatal(err)
	}
}

// waitLive waits until shop's live canary is rollout (or none, for "").
func (h *harness) waitLive(rollout string, weight int) {
	h.t.Helper()
	natstest.CheckFor(h.t, 10*time.Second, 5*time.Millisecond, func() error {
		c, ok := h.w.live.Canary("shop")
		switch {
		case rollout == "" && ok:
			return fmt.Errorf("canary %s still live", c.RolloutID)
		case rollout != "" && (!ok || c.RolloutID != rollout || c.Weight != weight):
			return fmt.Errorf("live canary %+v (live %v), want %s at %d%%", c, ok, rollout, weight)
		}
		return nil
	})
}

// evaluations is how often rule was judged so far.
func (h *harness) evaluations(rule string) float64 {
	var n float64
	for _, r := range []analysis.Result{analysis.Pass, analysis.Breach, analysis.NoData} {
		n += testutil.ToFloat64(h.w.evaluations.WithLabelValues(rule, string(r)))
	}
	return n
}

// waitEvaluations waits until rule was judged n more times than now.
func (h *harness) waitEvaluations(rule string, n float64) {
	h.t.Helper()
	from := h.evaluations(rule)
	natstest.CheckFor(h.t, 20*time.Second, 5*time.Millisecond, func() error {
		if got := h.evaluations(rule) - from; got < n {
			return fmt.Errorf("%v more evaluations of %s, want %v", got, rule, n)
		}
		return nil
	})
}

// counter is the value of the counter name with the label pairs, as the
// watcher's registry exposes it; 0 when it was never counted.
func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

type published struct {
	ev cloudevents.Event
	a  events.Anomaly
}

// anomalies reads every anomaly in the stream.
func (h *harness) anomalies() []published {
	h.t.Helper()
	ctx := h.t.Context()
	cons, err := h.bus.JetStream().OrderedConsumer(ctx, bus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"rampart.anomaly.>"},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []published
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		meta, _ := msg.Metadata()
		pending = meta.NumPending
		ev, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			h.t.Fatal(err)
		}
		a, err := events.AnomalyOf(ev)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, published{ev, a})
	}
	return out
}

func (h *harness) waitAnomalies(n int) []published {
	h.t.Helper()
	var got []published
	natstest.CheckFor(h.t, 20*time.Second, 10*time.Millisecond, func() error {
		if got = h.anomalies(); len(got) < n {
			return fmt.Errorf("%d anomalies, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// post sends a webhook and returns the status and the decoded answer.
func (h *harness) post(path string, body []byte, header http.Header) (int, ingress.Response) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.http.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r ingress.Response
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		h.t.Fatalf("answer %q: %v", b, err)
	}
	return resp.StatusCode, r
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func amBody(fingerprint string, labels map[string]string, status string) []byte {
	b, _ := json.Marshal(map[string]any{
		"version": "4", "status": status, "receiver": "rampart", "groupKey": "{}:{alertname=\"X\"}",
		"alerts": []map[string]any{{
			"status": status, "labels": labels, "annotations": map[string]string{"summary": "errors on shop"},
			"startsAt": "2026-05-01T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint,
		}},
	})
	return b
}

func siemSigned(body string) http.Header {
	return http.Header{hooks.SignatureHeader: {webhook.Sign([]byte(siemSecret), []byte(body))}}
}

func TestErrorRateBreachPublishesOneAnomaly(t *testing.T) {
	h := newHarness(t, policy.ProviderScrape, 50*time.Millisecond)
	h.router.Serve(policy.VersionCanary, 500, 1000) // before the step: outside the window
	h.router.StableMem.Set(100 << 20)
	h.router.CanaryMem.Set(110 << 20)
	st := h.step("r1", 0, 5)
	h.waitLive("r1", 5)
	h.waitEvaluations(analysis.RuleErrorRate, 1) // the window is open: traffic from now on counts
	if n := testutil.ToFloat64(h.w.evaluations.WithLabelValues(analysis.RuleErrorRate, "nodata")); n < 1 {
		t.Fatalf("no traffic was not reported as no data (%v)", n)
	}
	if len(h.anomalies()) != 0 {
		t.Fatal("an anomaly before any traffic")
	}

	h.router.Serve(policy.VersionCanary, 200, 100)
	h.router.Serve(policy.VersionCanary, 503, 10)
	got := h.waitAnomalies(1)
	h.waitEvaluations(analysis.RuleErrorRate, 5) // the breach goes on being seen
	if got = h.anomalies(); len(got) != 1 {
		t.Fatalf("%d anomalies, want exactly 1", len(got))
	}
	a, ev := got[0].a, got[0].ev
	cd, err := events.Parse(ev)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID() != "anomaly:r1:http-5xx-ratio" || a.Target != events.TargetCanary || a.Origin != policy.ProviderScrape ||
		a.Rule != analysis.RuleErrorRate || a.RolloutID != "r1" || a.ArtifactID != canaryPurl || a.Environment != "prod" ||
		cd.Context.ChainID != "chain-r1" || cd.CausedBy() != st.ID() || events.SubjectOf(ev) != "rampart.anomaly.shop" {
		t.Fatalf("anomaly %s %+v chain %q cause %q", ev.ID(), a, cd.Context.ChainID, cd.CausedBy())
	}
	if *a.Observed != 10.0/110 || *a.Threshold != 0.01 || !strings.Contains(a.Description, "9.09% (10 of 110 requests) is above the maximum 1.00%") {
		t.Fatalf("numbers: observed %v threshold %v %q", *a.Observed, *a.Threshold, a.Description)
	}
	if n := h.counter("rampart_watcher_anomalies_published_total", "origin", "scrape", "target", "canary"); n != 1 {
		t.Fatalf("anomalies metric %v", n)
	}
}

func TestMemoryBreach(t *testing.T) {
	h := newHarness(t, policy.ProviderScrape, 50*time.Millisecond)
	h.router.StableMem.Set(100 << 20)
	h.router.CanaryMem.Set(250 << 20)
	h.step("r1", 0, 5)
	got := h.waitAnomalies(1)
	if got[0].ev.ID() != "anomaly:r1:memory-ratio" || *got[0].a.Observed != 2.5 || *got[0].a.Threshold != 1.9 {
		t.Fatalf("%s %+v", got[0].ev.ID(), got[0].a)
	}
}

func TestStepsRollbacksAndReleases(t *testing.T) {
	h := newAlertHarness(t)
	h.step("r1", 1, 25)
	h.waitLive("r1", 25)
	rb, err := events.NewRollback(events.Meta{Source: "/rampart/deployer", App: "shop"},
		events.Rollback{RolloutID: "r1", App: "shop", Environment: "prod", ArtifactID: stablePurl, From: canaryPurl, TrafficAtAbort: 25})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(rb)
	h.waitLive("", 0)

	h.step("r2", 3, 100)
	h.waitLive("r2", 100)
	rel, err := events.NewReleaseCompleted(events.Meta{Source: "/rampart/deployer", App: "shop"},
		events.Release{RolloutID: "r2", App: "shop", Environment: "prod", ArtifactID: canaryPurl, Previous: stablePurl})
	if err != nil {
		t.Fatal(err)
	}
	h.publish(rel)
	h.waitLive("", 0)
	if r, ok := h.w.live.Release("shop"); !ok || r.RolloutID != "r2" {
		t.Fatalf("live release %+v", r)
	}
}

// A restarted watcher knows the live canary at once, although the durable
// consumer acknowledged its step long ago, and ignores the backlog it had
// already seen.
func TestRestartRebuildsTheLiveCanaries(t *testing.T) {
	h := newHarness(t, policy.ProviderScrape, time.Hour)
	h.step("r1", 0, 5)
	h.step("r1", 1, 25)
	h.waitLive("r1", 25)
	h.stop()
	h.start(time.Hour)
	if c, ok := h.w.live.Canary("shop"); !ok || c.RolloutID != "r1" || c.Weight != 25 || c.Step != 1 {
		t.Fatalf("after restart: %+v live=%v", c, ok)
	}
	if live := h.w.live.Canaries(); len(live) != 1 {
		t.Fatalf("live %+v", live)
	}
	h.step("r1", 2, 50)
	h.waitLive("r1", 50)
}

func TestAlertmanagerFloodIsOneAnomaly(t *testing.T) {
	h := newHarness(t, policy.ProviderScrape, time.Hour)
	st := h.step("r1", 0, 5)
	h.waitLive("r1", 5)
	body := amBody("1a30ba71cca2921f", map[string]string{"alertname": "HighErrorRate", "app": "shop", "version": "canary"}, "firing")
	for i := range 100 {
		code, resp := h.post(ingress.PathAlertmanager, body, bearer(amToken))
		if code != http.StatusOK || len(resp.Published)+len(resp.Duplicates) != 1 || (i == 0) != (len(resp.Published) == 1) {
			t.Fatalf("delivery %d: %d %+v", i, code, resp)
		}
	}
	got := h.anomalies()
	if len(got) != 1 {
		t.Fatalf("%d anomalies from 100 deliveries of one alert", len(got))
	}
	a := got[0].a
	cd, _ := events.Parse(got[0].ev)
	if got[0].ev.ID() != "alertmanager:1a30ba71cca2921f:1777636800000:r1" || a.Target != events.TargetCanary || a.Origin != "alertmanager" ||
		a.RolloutID != "r1" || cd.CausedBy() != st.ID() || !strings.Contains(a.Description, "HighErrorRate: errors on shop") {
		t.Fatalf("%s %+v", got[0].ev.ID(), a)
	}
	if n := h.counter("rampart_watcher_webhook_requests_total", "hook", "alertmanager", "code", "200"); n != 100 {
		t.Fatalf("webhook metric %v", n)
	}
}

func TestAlertmanagerMatching(t *testing.T) {
	h := newAlertHarness(t)
	tests := []struct {
		name   string
		labels map[string]string
		target string
	}{
		{"track label", map[string]string{"alertname": "A", "app": "shop", "track": "canary"}, events.TargetCanary},
		{"digest label", map[string]string{"alertname": "B", "app": "shop", "image": "registry.example.com/shop@" + canaryDig}, events.TargetCanary},
		{"the stable version", map[string]string{"alertname": "C", "app": "shop", "version": "stable"}, events.TargetNone},
		{"no version", map[string]string{"alertname": "D", "app": "shop"}, events.TargetNone},
		{"an app with no canary", map[string]string{"alertname": "E", "app": "cart", "version": "canary", "env": "staging"}, events.TargetNone},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := h.post(ingress.PathAlertmanager, amBody(fmt.Sprintf("f%d", i), tc.labels, "firing"), bearer(amToken))
			if code != http.StatusOK || len(resp.Published) != 1 {
				t.Fatalf("%d %+v", code, resp)
			}
			var a events.Anomaly
			for _, p := range h.anomalies() {
				if p.ev.ID() == resp.Published[0] {
					a = p.a
				}
			}
			if a.Target != tc.target || a.App != tc.labels["app"] {
				t.Fatalf("%+v, want target %s", a, tc.target)
			}
			if tc.target == events.TargetNone && (a.RolloutID != "" || !strings.Contains(a.Description, "not acted on")) {
				t.Fatalf("%+v", a)
			}
		})
	}
	if a := h.anomalies(); a[len(a)-1].a.Environment != "staging" {
		t.Fatalf("environment of an unknown app from its label: %+v", a[len(a)-1].a)
	}
}

func TestAlertmanagerIgnoresResolvedAndUnlabelled(t *testing.T) {
	h := newAlertHarness(t)
	code, resp := h.post(ingress.PathAlertmanager, amBody("aa", map[string]string{"app": "shop", "version": "canary"}, "resolved"), bearer(amToken))
	if code != http.StatusOK || len(resp.Published) != 0 || len(resp.Ignored) != 1 {
		t.Fatalf("%d %+v", code, resp)
	}
	code, resp = h.post(ingress.PathAlertmanager, amBody("bb", map[string]string{"alertname": "NodeDown"}, "firing"), bearer(amToken))
	if code != http.StatusOK || len(resp.Published) != 0 || !strings.Contains(resp.Ignored[0], "no app label") {
		t.Fatalf("%d %+v", code, resp)
	}
	if n := len(h.anomalies()); n != 0 {
		t.Fatalf("%d anomalies", n)
	}
}

func TestWebhookRefusals(t *testing.T) {
	h := newAlertHarness(t)
	good := amBody("cc", map[string]string{"app": "shop", "version": "canary"}, "firing")
	siem := `{"id":"s-1","app":"shop","severity":"high","title":"Suspicious process","occurredAt":"2026-05-01T12:00:00Z"}`
	basic := http.Header{}
	{
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth("am", "pw")
		basic.Set("Authorization", r.Header.Get("Authorization"))
	}
	tests := []struct {
		name   string
		path   string
		body   []byte
		header http.Header
		code   int
		reason string
	}{
		{"alertmanager without auth", ingress.PathAlertmanager, good, nil, 401, "Authorization header missing"},
		{"alertmanager wrong token", ingress.PathAlertmanager, good, bearer("nope"), 401, "does not match"},
		{"alertmanager basic when only a token is set", ingress.PathAlertmanager, good, basic, 401, "not accepted"},
		{"alertmanager malformed", ingress.PathAlertmanager, []byte(`{"version":"4","alerts":[{"status":"firing"}]}`), bearer(amToken), 400, "alerts[0].startsAt is missing"},
		{"alertmanager too large", ingress.PathAlertmanager, bytes.Repeat([]byte(" "), ingress.MaxBody+1), bearer(amToken), 413, "too large"},
		{"siem bad signature", ingress.PathSIEM, []byte(siem), http.Header{hooks.SignatureHeader: {webhook.Sign([]byte("wrong"), []byte(siem))}}, 401, "does not match"},
		{"siem signature of another body", ingress.PathSIEM, []byte(siem), siemSigned(siem + " "), 401, "does not match"},
		{"siem unsigned", ingress.PathSIEM, []byte(siem), nil, 401, "header missing"},
		{"siem unknown field", ingress.PathSIEM, []byte(strings.Replace(siem, `"id"`, `"x":1,"id"`, 1)), siemSigned(strings.Replace(siem, `"id"`, `"x":1,"id"`, 1)), 400, "unknown field"},
		{"siem missing field", ingress.PathSIEM, []byte(`{"id":"s-1","app":"shop"}`), siemSigned(`{"id":"s-1","app":"shop"}`), 400, "severity is required"},
		{"siem too large", ingress.PathSIEM, bytes.Repeat([]byte(" "), ingress.MaxBody+1), nil, 413, "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := h.post(tc.path, tc.body, tc.header)
			if code != tc.code || !strings.Contains(resp.Error, tc.reason) {
				t.Fatalf("%d %q, want %d mentioning %q", code, resp.Error, tc.code, tc.reason)
			}
		})
	}
	t.Run("content type", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.http.URL+ingress.PathAlertmanager, bytes.NewReader(good))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+amToken)
		resp, err := h.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	if n := len(h.anomalies()); n != 0 {
		t.Fatalf("%d anomalies published from refused requests", n)
	}
	if n := h.counter("rampart_watcher_webhook_requests_total", "hook", "siem", "code", "401"); n != 3 {
		t.Fatalf("siem 401s counted %v", n)
	}
}

func TestSIEM(t *testing.T) {
	h := newAlertHarness(t)
	alert := func(id, app, digest string) string {
		s := fmt.Sprintf(`{"id":%q,"app":%q,"severity":"critical","title":"Reverse shell","occurredAt":"2026-05-01T12:00:00Z"`, id, app)
		if digest != "" {
			s += fmt.Sprintf(`,"digest":%q`, digest)
		}
		return s + "}"
	}
	tests := []struct {
		name, body, id, target string
	}{
		{"for the live canary", alert("s-1", "shop", ""), "siem:s-1:r1", events.TargetCanary},
		{"naming the canary's digest", alert("s-2", "shop", canaryDig), "siem:s-2:r1", events.TargetCanary},
		{"naming another digest", alert("s-3", "shop", "sha256:"+strings.Repeat("0", 64)), "siem:s-3:none", events.TargetNone},
		{"for an app with nothing live", alert("s-4", "cart", ""), "siem:s-4:none", events.TargetNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 3 { // redeliveries are one event: the first publishes, the rest name it
				code, resp := h.post(ingress.PathSIEM, []byte(tc.body), siemSigned(tc.body))
				got := resp.Published
				if i > 0 {
					got = resp.Duplicates
				}
				if code != http.StatusOK || len(got) != 1 || got[0] != tc.id || len(resp.Published)+len(resp.Duplicates) != 1 {
					t.Fatalf("delivery %d: %d %+v, want %s", i+1, code, resp, tc.id)
				}
			}
			n := 0
			for _, p := range h.anomalies() {
				if p.ev.ID() == tc.id {
					n++
					if p.a.Target != tc.target || p.a.Rule != analysis.RuleSIEM || p.a.Origin != "siem" {
						t.Fatalf("%+v", p.a)
					}
				}
			}
			if n != 1 {
				t.Fatalf("%d events with id %s", n, tc.id)
			}
		})
	}
}

func TestSIEMRuleOffIsRecordedOnly(t *testing.T) {
	h := newHarness(t, policy.ProviderScrape, time.Hour)
	app := h.router.Policy(policy.ProviderScrape)
	app.Analysis.SIEM.Enabled = false
	h.policy = policy.StoreOf(&policy.Policy{Version: 1, Apps: []policy.App{app}})
	h.stop()
	h.start(time.Hour)
	h.step("r1", 0, 5)
	h.waitLive("r1", 5)
	body := `{"id":"s-9","app":"shop","severity":"low","title":"Port scan","occurredAt":"2026-05-01T12:00:00Z"}`
	code, resp := h.post(ingress.PathSIEM, []byte(body), siemSigned(body))
	if code != http.StatusOK || len(resp.Published) != 1 || resp.Published[0] != "siem:s-9:none" {
		t.Fatalf("%d %+v", code, resp)
	}
	if a := h.anomalies()[0].a; a.Target != events.TargetNone || !strings.Contains(a.Description, "SIEM rule is off") {
		t.Fatalf("%+v", a)
	}
}

// analyses are the step analyses the watcher published so far.
func (h *harness) analyses() []events.Analysis {
	h.t.Helper()
	cons, err := h.bus.JetStream().OrderedConsumer(h.t.Context(), bus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"rampart.analysis.>"},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []events.Analysis
	for pending := cons.CachedInfo().NumPending; pending > 0; {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		meta, _ := msg.Metadata()
		pending = meta.NumPending
		ev, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			h.t.Fatal(err)
		}
		a, err := events.AnalysisOf(ev)
		if err != nil {
			h.t.Fatal(err)
		}
		if ev.ID() != fmt.Sprintf("analysis:%s:%d", a.RolloutID, a.Step) || events.ChainID(ev) != "chain-"+a.RolloutID {
			h.t.Errorf("analysis event %s chain %s for %s step %d", ev.ID(), events.ChainID(ev), a.RolloutID, a.Step)
		}
		out = append(out, a)
	}
	return out
}

// Each step's analysis is recorded when the step ends, with the worst
// reading of each rule: the evidence a what-if re-judges under other
// thresholds.
func TestStepAnalysisIsRecorded(t *testing.T) {
	h := newHarness(t, policy.ProviderScrape, 50*time.Millisecond)
	h.router.StableMem.Set(100 << 20)
	h.router.CanaryMem.Set(120 << 20)
	h.step("r1", 0, 5)
	h.waitLive("r1", 5)
	h.waitEvaluations(analysis.RuleErrorRate, 1)
	h.router.Serve(policy.VersionCanary, 200, 995)
	h.router.Serve(policy.VersionCanary, 503, 5) // 0.5%: within the 1% maximum
	h.waitEvaluations(analysis.RuleErrorRate, 4)
	if got := h.analyses(); len(got) != 0 {
		t.Fatalf("an analysis before the step ended: %+v", got)
	}
	h.step("r1", 1, 25)
	h.waitLive("r1", 25)
	var got []events.Analysis
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got = h.analyses(); len(got) != 1 {
			return fmt.Errorf("%d analyses", len(got))
		}
		return nil
	})
	a := got[0]
	if a.Step != 0 || a.Weight != 5 || a.Provider != policy.ProviderScrape || a.Readings < 3 || len(a.Metrics) != 2 || !a.To.After(a.From) {
		t.Fatalf("analysis %+v", a)
	}
	rate, mem := a.Metrics[0], a.Metrics[1]
	if rate.Rule != analysis.RuleErrorRate || rate.Result != "pass" || rate.Observed != 0.005 || rate.Threshold != 0.01 || rate.Readings < 1 {
		t.Errorf("error rate %+v", rate)
	}
	if mem.Rule != analysis.RuleMemory || mem.Result != "pass" || mem.Observed != 1.2 || mem.Threshold != 1.9 {
		t.Errorf("memory %+v", mem)
	}
}
