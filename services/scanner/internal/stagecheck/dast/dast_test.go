package dast

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/sarif"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// flaws makes the test service wrong in the ways the checks look for.
type flaws struct {
	serverError, reflect, sqlError, noHeaders, cors, corsCreds bool
}

const spec = `{"openapi": "3.0.3", "info": {"title": "shop", "version": "1"},
 "paths": {
  "/items": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}}},
  "/items/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}], "responses": {"200": {"description": "ok"}}}},
  "/orders": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}, "responses": {"201": {"description": "ok"}}}}
 }}`

// service is a small shop: correct unless a flaw is set.
func service(f flaws) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.noHeaders {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Content-Security-Policy", "default-src 'none'")
		}
		if o := r.Header.Get("Origin"); o != "" && (f.cors || f.corsCreds) {
			w.Header().Set("Access-Control-Allow-Origin", o)
			if f.corsCreds {
				w.Header().Set("Access-Control-Allow-Credentials", "true")
			}
		}
		q := r.URL.Query().Get("q")
		switch {
		case r.URL.Path == "/items":
			if strings.Contains(q, "'") && f.sqlError {
				http.Error(w, `pq: unterminated quoted string at or near "'"`, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if f.reflect {
				fmt.Fprintf(w, "<p>results for %s</p>", q)
			} else {
				fmt.Fprintf(w, "<p>results for %s</p>", html.EscapeString(q))
			}
		case strings.HasPrefix(r.URL.Path, "/items/"):
			if _, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/items/")); err != nil {
				if f.serverError {
					http.Error(w, sql.ErrNoRows.Error(), http.StatusInternalServerError)
					return
				}
				http.Error(w, "id must be a number", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id": 1}`)
		case r.URL.Path == "/orders" && r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
		default:
			http.NotFound(w, r)
		}
	})
}

func scanOf(t *testing.T, f flaws) Report {
	t.Helper()
	srv := httptest.NewServer(service(f))
	defer srv.Close()
	rep, err := Scan(context.Background(), srv.Client(), Target{BaseURL: srv.URL, Spec: []byte(spec), Paths: []string{"/"}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Each check finds its flaw, and nothing on the correct service.
func TestChecks(t *testing.T) {
	clean := scanOf(t, flaws{})
	if len(clean.Results) != 0 {
		t.Fatalf("the correct service has findings: %+v", clean.Results)
	}
	// 4 operations (3 from the spec, / from paths): a plain request each, a
	// probe per parameter (q, id, and q on /), a malformed body on /orders.
	if clean.Requests != 8 {
		t.Fatalf("%d requests, want 8", clean.Requests)
	}
	for _, tt := range []struct {
		name  string
		f     flaws
		rule  string
		level string
		path  string
	}{
		{"server error", flaws{serverError: true}, RuleServerError, "error", "/items/{id}"},
		{"reflected input", flaws{reflect: true}, RuleReflected, "error", "/items"},
		{"sql error", flaws{sqlError: true}, RuleSQLError, "error", "/items"},
		{"missing headers", flaws{noHeaders: true}, RuleHeaders, "warning", "/items"},
		{"cors", flaws{cors: true}, RuleCORS, "warning", "/items"},
		{"cors with credentials", flaws{corsCreds: true}, RuleCORS, "error", "/items"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := scanOf(t, tt.f)
			var hit *Result
			for i, r := range rep.Results {
				if r.Rule != tt.rule {
					t.Errorf("unexpected %s: %s", r.Rule, r.Message)
				}
				if r.Path == tt.path {
					hit = &rep.Results[i]
				}
			}
			if hit == nil || hit.Level != tt.level {
				t.Fatalf("no %s %s on %s in %+v", tt.level, tt.rule, tt.path, rep.Results)
			}
		})
	}
}

// The report reads back as SARIF with the gate's severities.
func TestSARIF(t *testing.T) {
	rep := scanOf(t, flaws{sqlError: true, noHeaders: true})
	log, err := sarif.ParseBytes(rep.SARIF())
	if err != nil {
		t.Fatal(err)
	}
	fs := log.Findings()
	sev := map[string]finding.Severity{}
	for _, f := range fs {
		sev[f.ID+" "+f.Package] = f.Severity
	}
	if sev[RuleSQLError+" GET /items"] != finding.High || sev[RuleHeaders+" GET /items"] != finding.Medium {
		t.Fatalf("findings = %+v", fs)
	}
	if !strings.HasPrefix(fs[0].Title, "Rampart DAST: GET /items: a database error") {
		t.Fatalf("title %q", fs[0].Title)
	}
	if _, err := sarif.ParseBytes(Report{}.SARIF()); err != nil {
		t.Fatalf("an empty report is not valid SARIF: %v", err)
	}
}

func TestBadSpecAndUnreachable(t *testing.T) {
	if _, err := Scan(context.Background(), http.DefaultClient, Target{BaseURL: "http://127.0.0.1:1", Spec: []byte("{not json")}); err == nil || !strings.Contains(err.Error(), "OpenAPI spec does not load") {
		t.Fatalf("bad spec: %v", err)
	}
	if _, err := Scan(context.Background(), http.DefaultClient, Target{BaseURL: "http://127.0.0.1:1", Paths: []string{"/"}}); err == nil {
		t.Fatal("an unreachable stage scanned clean")
	}
}
