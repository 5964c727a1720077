package stagecheck

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

const (
	image    = "127.0.0.1:5000/demo/shop"
	artifact = "pkg:oci/shop@sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12" + "?repository_url=127.0.0.1:5000/demo/shop"
)

// staging is the candidate running in the stage: an items API whose
// answers the test sets.
type staging struct {
	mu      sync.Mutex
	items   string // the /items answer
	sqlLeak bool
}

func (s *staging) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case "/openapi.json":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"openapi": "3.0.3", "info": {"title": "shop", "version": "1"}, "paths": {"/items": {"get": {
			"parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}}}}}`)
	case "/items":
		if s.sqlLeak && strings.Contains(r.URL.Query().Get("q"), "'") {
			http.Error(w, "You have an error in your SQL syntax near '''", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, s.items)
	default:
		http.NotFound(w, r)
	}
}

func (s *staging) set(items string, sqlLeak bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items, s.sqlLeak = items, sqlLeak
}

type env struct {
	ns      *server.Server
	stage   *staging
	url     string
	deploy  *bus.Bus // publishes as the deployer
	checker *Checker
	pub     ed25519.PublicKey
	verdict chan cloudevents.Event
}

func start(t *testing.T, gatePolicy *gate.Policy) *env {
	t.Helper()
	e := &env{ns: natstest.Server(t, ""), stage: &staging{items: `{"items": [{"name": "tea", "price": 3.5}]}`}, verdict: make(chan cloudevents.Event, 10)}
	srv := httptest.NewServer(e.stage)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	natstest.Bus(t, e.ns) // the stream
	dir := t.TempDir()
	contract := filepath.Join(dir, "frontend.yaml")
	if err := os.WriteFile(contract, []byte(`consumer: frontend
interactions:
  - name: list items
    request: {method: GET, path: /items}
    response: {status: 200, fields: {"items[].name": string, "items[].price": number}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(filepath.Join(dir, "rampart.yaml"), fmt.Appendf(nil, `version: 1
apps:
  - name: shop
    image: %s
    environment: prod
    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://a, canary: http://b}}
    stages:
      - name: staging
        url: %s
        checks: {dast: {openapi: /openapi.json}, contracts: [frontend.yaml], timeout: 10s}
`, image, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	var key ed25519.PrivateKey
	e.pub, key, _ = ed25519.GenerateKey(nil)
	scanner := busAs(t, e.ns, "scanner")
	e.checker, err = New(Options{Key: key, Policy: policy.StoreOf(pol), Publisher: scanner, Gate: gatePolicy, ZAPToken: "zap-token",
		HTTPClient: srv.Client(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	opts := Consumer
	opts.Backoff = []time.Duration{10 * time.Millisecond}
	c, err := scanner.Consume(t.Context(), opts, e.checker.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	sub, err := natstest.Connect(t, e.ns).Subscribe("rampart.scan.>", func(m *nats.Msg) {
		if ev, err := events.FromMsg(m.Header, m.Data); err == nil {
			e.verdict <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	e.deploy = busAs(t, e.ns, "deployer")
	return e
}

func busAs(t *testing.T, ns *server.Server, name string) *bus.Bus {
	t.Helper()
	b, err := bus.New(natstest.ConnectAs(t, ns, name), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deployed announces the candidate in staging, as the deployer does, and
// returns the stage verdict.
func (e *env) deployed(t *testing.T, id string) events.Scan {
	t.Helper()
	ev, err := events.NewStageDeployed(events.Meta{ID: id, Source: "/rampart/deployer", ChainID: "chain-" + id, App: "shop"},
		events.StageDeployment{App: "shop", Stage: "staging", Environment: "staging", ArtifactID: artifact, URL: e.url, VerdictID: "scan-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.deploy.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-e.verdict:
		s, err := events.VerifyScan(v, e.pub)
		if err != nil {
			t.Fatalf("stage verdict: %v", err)
		}
		if s.TargetKind != TargetStage || s.Environment != "staging" || s.Target != artifact || events.ChainID(v) != "chain-"+id {
			t.Fatalf("stage verdict = %+v (chain %s)", s, events.ChainID(v))
		}
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("no stage verdict")
	}
	return events.Scan{}
}

func TestStageVerdicts(t *testing.T) {
	e := start(t, nil)
	if v := e.deployed(t, "d-pass"); v.Outcome != events.OutcomePass {
		t.Fatalf("the honest candidate: %+v", v)
	}

	// The provider renames a field the frontend reads: its spec could say
	// so or not, the replayed contract fails either way.
	e.stage.set(`{"items": [{"name": "tea", "cost": 3.5}]}`, false)
	v := e.deployed(t, "d-contract")
	if v.Outcome != events.OutcomeBlocked || len(v.Findings) != 1 || v.Findings[0].ID != "rampart-contract/frontend" ||
		!strings.Contains(v.Findings[0].Title, "items[0].price is missing") {
		t.Fatalf("contract break: %+v", v)
	}

	// DAST: a quote in q makes the database talk.
	e.stage.set(`{"items": [{"name": "tea", "price": 3.5}]}`, true)
	v = e.deployed(t, "d-sql")
	if v.Outcome != events.OutcomeBlocked || v.Findings[0].ID != "rampart-dast/sql-error" || v.Findings[0].Package != "GET /items" {
		t.Fatalf("sql error: %+v", v)
	}
}

// A stage deployment the deployer announces as failed (the stage never
// served the candidate) is not checked: no verdict could be about the
// candidate. The consumer goes on in order, so the next deployment's
// verdict is the first to come.
func TestFailedStageIsNotChecked(t *testing.T) {
	e := start(t, nil)
	ev, err := events.NewStageDeployed(events.Meta{ID: "d-failed", Source: "/rampart/deployer", ChainID: "chain-d-failed", App: "shop"},
		events.StageDeployment{App: "shop", Stage: "staging", Environment: "staging", ArtifactID: artifact, URL: e.url, VerdictID: "scan-1",
			Failed: "Deployment shop/shop-staging: not available within the progress deadline"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.deploy.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if v := e.deployed(t, "d-after"); v.Outcome != events.OutcomePass { // fails on a verdict of chain-d-failed
		t.Fatalf("the deployment after: %+v", v)
	}
}

// A waiver accepts a DAST finding as it accepts any other.
func TestStageWaiver(t *testing.T) {
	g, err := gate.Parse("gate.yaml", []byte("ignore_unfixed: true\nwaivers:\n  - id: rampart-dast/sql-error\n    package: GET /items\n    owner: dba@example.com\n    expires: 2099-01-01\n    reason: a test database\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, g)
	e.stage.set(`{"items": [{"name": "tea", "price": 3.5}]}`, true)
	if v := e.deployed(t, "d-waived"); v.Outcome != events.OutcomePass {
		t.Fatalf("waived finding still blocks: %+v", v)
	}
	// ignore_unfixed does not let a stage's own findings through: a
	// contract break has no published fix, and blocks.
	e.stage.set(`{"items": [{"name": "tea"}]}`, true)
	if v := e.deployed(t, "d-unfixed"); v.Outcome != events.OutcomeBlocked || v.Findings[0].ID != "rampart-contract/frontend" {
		t.Fatalf("contract break under ignore_unfixed: %+v", v)
	}
}

// An unreachable stage is tried again, then its verdict is error: nothing
// unchecked passes.
func TestUnreachableStage(t *testing.T) {
	e := start(t, nil)
	e.url = "http://127.0.0.1:1" // only the event's; the checker reads the policy's URL
	v := e.deployed(t, "d-reach")
	if v.Outcome != events.OutcomePass {
		t.Fatalf("the event's URL was used instead of the policy's: %+v", v)
	}
	e.checker.opts.Policy = policy.StoreOf(mustRewrite(t, e.checker.opts.Policy.Current(), "http://127.0.0.1:1"))
	v = e.deployed(t, "d-down")
	if v.Outcome != events.OutcomeError || !strings.Contains(v.Reason, "connection refused") {
		t.Fatalf("unreachable stage: %+v", v)
	}
}

func mustRewrite(t *testing.T, p *policy.Policy, url string) *policy.Policy {
	t.Helper()
	cp := *p
	cp.Apps = append([]policy.App(nil), p.Apps...)
	cp.Apps[0].Stages = append([]policy.Stage(nil), p.Apps[0].Stages...)
	cp.Apps[0].Stages[0].URL = url
	return &cp
}

func TestZAPHook(t *testing.T) {
	e := start(t, nil)
	mux := http.NewServeMux()
	e.checker.Routes(mux)
	hook := httptest.NewServer(mux)
	defer hook.Close()
	zapJSON := `{"@programName": "ZAP", "@version": "2.16.1", "site": [{"@name": "` + e.url + `", "alerts": [
	  {"pluginid": "40018", "name": "SQL Injection", "riskcode": "3", "confidence": "2", "cweid": "89",
	   "instances": [{"uri": "` + e.url + `/items?q=1%27", "method": "GET", "param": "q"}]},
	  {"pluginid": "10021", "name": "X-Content-Type-Options Header Missing", "riskcode": "1", "confidence": "2", "instances": []},
	  {"pluginid": "10049", "name": "Storable and Cacheable Content", "riskcode": "0", "confidence": "2", "instances": []},
	  {"pluginid": "99999", "name": "Dismissed", "riskcode": "3", "confidence": "0", "instances": []}]}]}`
	post := func(query, token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, hook.URL+ZAPPath+"?"+query, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hook.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	good := "app=shop&stage=staging&artifact=" + strings.ReplaceAll(strings.ReplaceAll(artifact, "?", "%3F"), "=", "%3D")
	for _, tt := range []struct {
		name, query, token, body string
		status                   int
		want                     string
	}{
		{"no token", good, "", zapJSON, 401, "unauthorized"},
		{"wrong token", good, "nope", zapJSON, 401, "unauthorized"},
		{"unknown stage", "app=shop&stage=qa&artifact=x", "zap-token", zapJSON, 400, `no pre-production stage "qa"`},
		{"bad app name", "app=Shop!&stage=staging", "zap-token", zapJSON, 400, "app"},
		{"foreign artifact", "app=shop&stage=staging&artifact=pkg:oci/other@sha256:aa%3Frepository_url%3Dr/other", "zap-token", zapJSON, 400, "is not an image of shop"},
		{"not a report", good, "zap-token", `{"hello": 1}`, 400, "neither SARIF"},
		{"bad riskcode", good, "zap-token", `{"site": [{"alerts": [{"pluginid": "1", "riskcode": "7"}]}]}`, 400, `riskcode "7"`},
		{"bad sarif", good, "zap-token", `{"version": "2.1.0", "runs": 3}`, 400, "invalid SARIF"},
		{"zap json", good, "zap-token", zapJSON, 202, `"outcome":"blocked"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(tt.query, tt.token, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%d %s, want %d with %q", status, body, tt.status, tt.want)
			}
		})
	}
	select {
	case ev := <-e.verdict:
		s, err := events.VerifyScan(ev, e.pub)
		if err != nil || s.TargetKind != TargetDAST || s.Outcome != events.OutcomeBlocked || s.Counts["high"] != 1 || s.Counts["low"] != 1 ||
			s.Findings[0].ID != "zap-40018" || s.Findings[0].Title != "ZAP: SQL Injection (CWE-89)" {
			t.Fatalf("ZAP verdict = %+v, %v", s, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ZAP verdict")
	}
	select {
	case ev := <-e.verdict:
		t.Fatalf("a refused request published %s", ev.ID())
	default:
	}
	// ZAP's SARIF report goes through the SARIF reader.
	zapSARIF := `{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ZAP", "rules": [{"id": "10021", "defaultConfiguration": {"level": "note"}}]}},
	  "results": [{"ruleId": "10021", "message": {"text": "X-Content-Type-Options Header Missing"}}]}]}`
	if status, body := post(good, "zap-token", zapSARIF); status != 202 || !strings.Contains(body, `"outcome":"pass"`) {
		t.Fatalf("ZAP SARIF: %d %s", status, body)
	}
	if s, err := events.VerifyScan(<-e.verdict, e.pub); err != nil || s.Counts["low"] != 1 || s.Outcome != events.OutcomePass {
		t.Fatalf("ZAP SARIF verdict = %+v, %v", s, err)
	}
	// The same report again is the same event.
	_, body := post(good, "zap-token", zapJSON)
	var a ZAPAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil || !a.Duplicate {
		t.Fatalf("repeat = %s", body)
	}
}
