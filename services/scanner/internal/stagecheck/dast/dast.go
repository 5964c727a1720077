// Package dast is the scanner's dynamic scan of a running candidate: the
// requests its OpenAPI spec describes, plus baseline checks any web service
// must pass, sent to the stage where it runs. Each problem is a SARIF
// result, so the findings go through the same reading, gate and waivers as
// the SARIF that ZAP or any other tool uploads.
package dast

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The rules, by SARIF rule id.
const (
	RuleServerError = "rampart-dast/server-error"
	RuleReflected   = "rampart-dast/reflected-input"
	RuleSQLError    = "rampart-dast/sql-error"
	RuleHeaders     = "rampart-dast/missing-security-headers"
	RuleCORS        = "rampart-dast/permissive-cors"
)

type rule struct {
	id, name, text, cwe string
	level               string // SARIF default level
}

var rules = []rule{
	{RuleServerError, "ServerErrorOnMalformedInput", "The service answers malformed input with a server error instead of a 4xx.", "CWE-20", "error"},
	{RuleReflected, "ReflectedInput", "Input is reflected unescaped in a response a browser renders (cross-site scripting).", "CWE-79", "error"},
	{RuleSQLError, "SQLErrorLeak", "A database error message reaches the client: the input reaches a query, and the error tells an attacker how.", "CWE-209", "error"},
	{RuleHeaders, "MissingSecurityHeaders", "Security headers are missing (X-Content-Type-Options, Content-Security-Policy for HTML, Strict-Transport-Security over HTTPS).", "CWE-693", "warning"},
	{RuleCORS, "PermissiveCORS", "Any origin may read the responses (CORS allows an arbitrary origin).", "CWE-942", "warning"},
}

// Probe is the value sent in every parameter: a quote for SQL, markup for
// reflection, both malformed for a typed parameter.
const Probe = `1'"<rampart-probe>`

// Origin is the foreign origin the CORS check claims to come from.
const Origin = "https://rampart-probe.invalid"

// MaxBody bounds how much of a response is read.
const MaxBody = 1 << 20

// Target is what to scan.
type Target struct {
	// BaseURL is the stage's URL, e.g. http://127.0.0.1:9001.
	BaseURL string
	// Spec is the candidate's OpenAPI document (JSON or YAML); nil scans
	// Paths only.
	Spec []byte
	// Paths are probed with GET besides the spec's operations.
	Paths []string
}

// Result is one problem found.
type Result struct {
	Rule    string
	Level   string // SARIF level: error (High) or warning (Medium)
	Method  string
	Path    string // the path as the spec writes it, or as probed
	Message string
}

// Report is a scan's outcome.
type Report struct {
	Results  []Result
	Requests int // how many requests were sent
}

// request is one operation to probe.
type request struct {
	method, path string   // path as written, e.g. /items/{id}
	pathParams   []string // names in path
	query        []string // query parameter names
	jsonBody     bool     // the operation takes a JSON body
}

// Scan probes the target. It fails only when the target cannot be reached
// or the spec does not load; each problem of the service is a Result.
func Scan(ctx context.Context, hc *http.Client, t Target) (Report, error) {
	reqs, err := operations(t.Spec)
	if err != nil {
		return Report{}, err
	}
	for _, p := range t.Paths {
		if !slices.ContainsFunc(reqs, func(r request) bool { return r.method == http.MethodGet && r.path == p }) {
			reqs = append(reqs, request{method: http.MethodGet, path: p, query: []string{"q"}})
		}
	}
	s := &scan{hc: hc, base: strings.TrimRight(t.BaseURL, "/")}
	for _, r := range reqs {
		if err := s.probe(ctx, r); err != nil {
			return s.report, err
		}
	}
	return s.report, nil
}

type scan struct {
	hc     *http.Client
	base   string
	report Report
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *scan) send(ctx context.Context, method, path string, query url.Values, body []byte, header http.Header) (response, error) {
	u := s.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return response{}, fmt.Errorf("DAST request %s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	s.report.Requests++
	resp, err := s.hc.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("DAST %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return response{}, fmt.Errorf("DAST %s %s: read answer: %w", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}, nil
}

func (s *scan) add(r request, ruleID, level, format string, args ...any) {
	s.report.Results = append(s.report.Results, Result{Rule: ruleID, Level: level, Method: r.method, Path: r.path,
		Message: r.method + " " + r.path + ": " + fmt.Sprintf(format, args...)})
}

// fill puts v in every path parameter of r.
func fill(r request, v string) string {
	p := r.path
	for _, n := range r.pathParams {
		p = strings.ReplaceAll(p, "{"+n+"}", url.PathEscape(v))
	}
	return p
}

// probe sends r once as a client would (headers, CORS), once with the
// probe in each parameter (server errors, reflection, SQL errors) and, when
// it takes JSON, once with a malformed body.
func (s *scan) probe(ctx context.Context, r request) error {
	var baseBody []byte
	if r.jsonBody {
		baseBody = []byte("{}")
	}
	h := http.Header{"Origin": {Origin}}
	if r.jsonBody {
		h.Set("Content-Type", "application/json")
	}
	base, err := s.send(ctx, r.method, fill(r, "1"), nil, baseBody, h)
	if err != nil {
		return err
	}
	s.checkHeaders(r, base)
	s.checkCORS(r, base)

	params := slices.Clone(r.query)
	if len(r.pathParams) > 0 {
		params = append(params, "") // "" stands for the path parameters
	}
	for _, name := range params {
		path, q := fill(r, "1"), url.Values{}
		if name == "" {
			path = fill(r, Probe)
		} else {
			q.Set(name, Probe)
		}
		resp, err := s.send(ctx, r.method, path, q, baseBody, h)
		if err != nil {
			return err
		}
		where := "path parameters"
		if name != "" {
			where = "query parameter " + name
		}
		s.checkInput(r, where, resp)
	}
	if r.jsonBody {
		resp, err := s.send(ctx, r.method, fill(r, "1"), nil, []byte(`{"`+Probe), http.Header{"Content-Type": {"application/json"}})
		if err != nil {
			return err
		}
		s.checkInput(r, "a malformed JSON body", resp)
	}
	return nil
}

// sqlErrors are fragments of the error messages of common databases and
// drivers.
var sqlErrors = []string{
	"you have an error in your sql syntax", "unclosed quotation mark", "unterminated quoted string",
	"syntax error at or near", "sqlite3.operationalerror", "sqlite_error", "near \"", "sqlstate",
	"ora-00933", "ora-01756", "pq: ", "mysql_fetch", "quoted string not properly terminated",
}

// checkInput judges the answer to a probe.
func (s *scan) checkInput(r request, where string, resp response) {
	if resp.status >= 500 {
		s.add(r, RuleServerError, "error", "%s with %s: %d instead of a 4xx", Probe, where, resp.status)
	}
	ct := strings.ToLower(resp.header.Get("Content-Type"))
	if strings.Contains(resp.body, "<rampart-probe>") && !strings.Contains(ct, "json") {
		s.add(r, RuleReflected, "error", "%s reflected unescaped in a %s answer", where, cmp.Or(ct, "typeless"))
	}
	lower := strings.ToLower(resp.body)
	for _, frag := range sqlErrors {
		if strings.Contains(lower, frag) {
			s.add(r, RuleSQLError, "error", "a database error answers a quote in %s (%q)", where, frag)
			break
		}
	}
}

func (s *scan) checkHeaders(r request, resp response) {
	var missing []string
	if !strings.EqualFold(resp.header.Get("X-Content-Type-Options"), "nosniff") {
		missing = append(missing, "X-Content-Type-Options: nosniff")
	}
	if strings.Contains(strings.ToLower(resp.header.Get("Content-Type")), "html") && resp.header.Get("Content-Security-Policy") == "" {
		missing = append(missing, "Content-Security-Policy")
	}
	if strings.HasPrefix(s.base, "https:") && resp.header.Get("Strict-Transport-Security") == "" {
		missing = append(missing, "Strict-Transport-Security")
	}
	if len(missing) > 0 {
		s.add(r, RuleHeaders, "warning", "missing %s", strings.Join(missing, ", "))
	}
}

func (s *scan) checkCORS(r request, resp response) {
	allow := resp.header.Get("Access-Control-Allow-Origin")
	creds := strings.EqualFold(resp.header.Get("Access-Control-Allow-Credentials"), "true")
	switch {
	case allow == Origin && creds:
		s.add(r, RuleCORS, "error", "any origin may read answers with the user's credentials (Access-Control-Allow-Origin echoes %s, Allow-Credentials: true)", Origin)
	case allow == Origin:
		s.add(r, RuleCORS, "warning", "any origin may read answers (Access-Control-Allow-Origin echoes %s)", Origin)
	case allow == "*" && creds:
		s.add(r, RuleCORS, "error", "Access-Control-Allow-Origin: * with Allow-Credentials: true")
	}
}

// SARIF is the report as a SARIF 2.1.0 log of the tool "Rampart DAST".
func (r Report) SARIF() []byte {
	type text struct {
		Text string `json:"text"`
	}
	type desc struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     text              `json:"shortDescription"`
		DefaultConfiguration map[string]string `json:"defaultConfiguration"`
		Properties           map[string]any    `json:"properties"`
	}
	type loc struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID    string `json:"ruleId"`
		RuleIndex int    `json:"ruleIndex"`
		Level     string `json:"level"`
		Message   text   `json:"message"`
		Locations []loc  `json:"locations"`
	}
	var ds []desc
	index := map[string]int{}
	for i, ru := range rules {
		index[ru.id] = i
		ds = append(ds, desc{ID: ru.id, Name: ru.name, ShortDescription: text{ru.text},
			DefaultConfiguration: map[string]string{"level": ru.level}, Properties: map[string]any{"tags": []string{"security", "external/cwe/" + strings.ToLower(ru.cwe)}}})
	}
	results := []result{}
	for _, res := range r.Results {
		var l loc
		l.PhysicalLocation.ArtifactLocation.URI = res.Method + " " + res.Path
		results = append(results, result{RuleID: res.Rule, RuleIndex: index[res.Rule], Level: res.Level, Message: text{res.Message}, Locations: []loc{l}})
	}
	doc := map[string]any{
		"version": "2.1.0",
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"runs": []any{map[string]any{
			"tool":    map[string]any{"driver": map[string]any{"name": "Rampart DAST", "informationUri": "https://github.com/rampartci/rampart", "rules": ds}},
			"results": results,
		}},
	}
	b, _ := json.Marshal(doc) // plain maps and strings: cannot fail
	return b
}
