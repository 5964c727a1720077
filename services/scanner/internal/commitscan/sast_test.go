package commitscan

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/scanner/sast"
)

const shopGoMod = "module github.com/acme/shop\n\ngo 1.22\n"

// credentialsGo holds a hard-coded password gosec recognises by name (G101).
const credentialsGo = `package shop

const dbPassword = "Tr0ub4dor&3-horse"

func DSN() string { return "postgres://shop:" + dbPassword + "@db/shop" }
`

// sqlHandlers reads the handler with the string-built query (line 10) and
// its parameterised fix from package sast's testdata.
func sqlHandlers(t *testing.T) (injectable, fixed string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("Go SAST needs the go command")
	}
	a, err := os.ReadFile("../../sast/testdata/user_injectable.go")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../sast/testdata/user_fixed.go")
	if err != nil {
		t.Fatal(err)
	}
	return string(a), string(b)
}

// A pull request that builds SQL from the request is blocked with a
// CWE-89 finding at the query's file:line, named in the verdict and in the
// PR comment; the commit with the parameterised query passes.
func TestHandleBlocksSQLInjection(t *testing.T) {
	injectable, fixed := sqlHandlers(t)
	e := newEnv(t)
	r := newRepo(t)
	base := r.commit("base", map[string]string{"go.mod": shopGoMod, "db/dsn.go": credentialsGo})
	head := r.commit("user lookup", map[string]string{"db/user.go": injectable})
	c := r.event(head)
	c.Ref, c.PullRequest = r.pullRef(21, head, base), 21
	e.publishCommit(t, c)

	_, s := e.verdictFor(t, head)
	if s.Outcome != events.OutcomeBlocked {
		t.Fatalf("verdict %+v, want blocked on the SQL injection", s)
	}
	sqlAt := func(f events.Finding) bool {
		return (f.ID == "G201" || f.ID == "G202") && f.Package == "db/user.go:10" && f.Severity == "HIGH" &&
			strings.Contains(f.Title, "CWE-89")
	}
	if !slices.ContainsFunc(s.Findings, sqlAt) {
		t.Errorf("findings %+v: no HIGH G201/G202 CWE-89 at db/user.go:10", s.Findings)
	}
	if !strings.Contains(s.Reason, "(HIGH) in db/user.go:10") || !strings.Contains(s.Reason, "Go SAST (gosec") {
		t.Errorf("reason %q does not name the query's file:line and the Go analysis", s.Reason)
	}
	// The hard-coded password is reported (gosec is not confident enough
	// of a name match for it to block).
	if !slices.ContainsFunc(s.Findings, func(f events.Finding) bool {
		return f.ID == "G101" && f.Package == "db/dsn.go:3" && f.Severity == "MEDIUM" && strings.Contains(f.Title, "CWE-798")
	}) {
		t.Errorf("findings %+v: no G101 CWE-798 at db/dsn.go:3", s.Findings)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := len(e.github.snapshot()); n != 2 {
			return fmt.Errorf("%d GitHub calls, want status and comment", n)
		}
		return nil
	})
	calls := e.github.snapshot()
	if st := calls[0]; st.Body["state"] != "failure" || !strings.Contains(st.Body["description"], "db/user.go:10") {
		t.Errorf("status %v, want a failure naming db/user.go:10", st.Body)
	}
	if cm := calls[1]; cm.Path != "/repos/acme/shop/issues/21/comments" ||
		!strings.Contains(cm.Body["body"], "`db/user.go:10`") || !strings.Contains(cm.Body["body"], "CWE-89") ||
		!strings.Contains(cm.Body["body"], "> Go SAST (gosec v2.30.0): 1 package, 2 files") {
		t.Errorf("comment %s %q, want one on PR 21 naming db/user.go:10, CWE-89 and what was analysed", cm.Path, cm.Body["body"])
	}

	fix := r.commit("parameterised query", map[string]string{"db/user.go": fixed})
	e.publishCommit(t, r.event(fix))
	if _, s := e.verdictFor(t, fix); s.Outcome != events.OutcomePass || slices.ContainsFunc(s.Findings, func(f events.Finding) bool {
		return strings.HasPrefix(f.Package, "db/user.go")
	}) {
		t.Fatalf("fixed commit: verdict %+v, want a pass with nothing in db/user.go", s)
	}
}

// A waiver for the rule at its place accepts the finding, as for any other
// commit finding; when it expires the commit blocks again.
func TestSQLInjectionWaiver(t *testing.T) {
	injectable, _ := sqlHandlers(t)
	s := newTestScanner(t, ScannerOptions{DisableMisconf: true})
	r := newRepo(t)
	sha := r.commit("user lookup", map[string]string{"go.mod": shopGoMod, "db/user.go": injectable})
	res, err := s.ScanCommit(t.Context(), r.event(sha))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	pol := &gate.Policy{BlockOn: []finding.Severity{finding.Critical, finding.High}, Version: "waived"}
	for _, f := range res.Findings {
		if f.Severity >= finding.High {
			pol.Waivers = append(pol.Waivers, gate.Waiver{ID: f.ID, Package: f.Package, Owner: "dba@acme.test", Expires: now.Add(time.Hour)})
		}
	}
	if len(pol.Waivers) == 0 {
		t.Fatalf("nothing to waive:%s", list(res.Findings))
	}
	if dec := pol.Evaluate(res.Findings, now); dec.Outcome != gate.Pass || len(dec.Waived) != len(pol.Waivers) {
		t.Errorf("waived: %s %q", dec.Outcome, dec.Reasons)
	}
	if dec := pol.Evaluate(res.Findings, now.Add(2*time.Hour)); dec.Outcome != gate.Blocked || !strings.Contains(dec.Reasons[0], "expired") {
		t.Errorf("after expiry: %s %q", dec.Outcome, dec.Reasons)
	}
}

// A module whose dependencies are not in the module cache (nothing is
// downloaded) is still analysed with what loads, and the verdict says so.
func TestScanCommitSASTWithoutModules(t *testing.T) {
	injectable, _ := sqlHandlers(t)
	s := newTestScanner(t, ScannerOptions{DisableMisconf: true})
	r := newRepo(t)
	mod := shopGoMod + "\nrequire github.com/acme-missing/orm v0.4.0\n"
	orm := "package orm\n\nimport _ \"github.com/acme-missing/orm\"\n"
	sha := r.commit("user lookup", map[string]string{"go.mod": mod, "db/user.go": injectable, "orm/orm.go": orm})
	res, err := s.ScanCommit(t.Context(), r.event(sha))
	if err != nil {
		t.Fatal(err)
	}
	if !has(res.Findings, "G202", "db/user.go:10", finding.High) {
		t.Errorf("G202 not found next to a package that did not load:%s", list(res.Findings))
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "1 incomplete: github.com/acme/shop/orm") {
		t.Errorf("notes %q, want the package without its module named", res.Notes)
	}
}

// Without a go command the scan runs without SAST and says so.
func TestScanCommitWithoutGoCommand(t *testing.T) {
	s := newTestScanner(t, ScannerOptions{DisableMisconf: true, SAST: sast.Options{Go: "/nonexistent/go"}})
	r := newRepo(t)
	sha := r.commit("main", map[string]string{"go.mod": shopGoMod, "main.go": "package main\n\nfunc main() {}\n"})
	res, err := s.ScanCommit(t.Context(), r.event(sha))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 1 || !strings.HasPrefix(res.Notes[0], "Go sources not analysed: ") {
		t.Errorf("notes %q, want SAST reported off", res.Notes)
	}
}
