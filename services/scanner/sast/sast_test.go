package sast

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/securego/gosec/v2/cwe"
	"github.com/securego/gosec/v2/issue"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

// The handler that builds its query from the request, and the same handler
// with a parameterised query; line 10 is the query. The commit scan's tests
// commit these files too.
var (
	SQLHandler = readTestdata("testdata/user_injectable.go")
	SQLFixed   = readTestdata("testdata/user_fixed.go")
)

func readTestdata(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newAnalyzer(t testing.TB, opts Options) *Analyzer {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	return a
}

func list(fs []finding.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s in %s %s", f.Severity, f.ID, f.Package, f.Title)
	}
	return b.String()
}

func TestAnalyze(t *testing.T) {
	a := newAnalyzer(t, Options{})
	const goMod = "module example.test/shop\n\ngo 1.22\n"
	t.Run("string-built SQL is a HIGH CWE-89 at its line", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"go.mod": goMod, "db/user.go": SQLHandler})
		rep, err := a.Analyze(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(rep.Findings, func(f finding.Finding) bool {
			return (f.ID == "G202" || f.ID == "G201") && f.Package == "db/user.go:10" && f.Severity == finding.High &&
				strings.Contains(f.Title, "CWE-89")
		}) {
			t.Errorf("no HIGH G201/G202 CWE-89 at db/user.go:10:%s", list(rep.Findings))
		}
		if rep.Modules != 1 || rep.Packages != 1 || rep.Files != 1 || len(rep.Incomplete) != 0 {
			t.Errorf("coverage = %+v, want 1 module, 1 package, 1 file, complete", rep)
		}
	})
	t.Run("parameterised SQL is clean", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"go.mod": goMod, "db/user.go": SQLFixed})
		rep, err := a.Analyze(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Findings) != 0 {
			t.Errorf("findings in the fixed handler:%s", list(rep.Findings))
		}
	})
	t.Run("#nosec does not hide a finding", func(t *testing.T) {
		src := strings.Replace(SQLHandler, `Get("id"))`, `Get("id")) // #nosec G202 G701`, 1)
		dir := writeTree(t, map[string]string{"go.mod": goMod, "db/user.go": src})
		rep, err := a.Analyze(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(rep.Findings, func(f finding.Finding) bool { return f.Package == "db/user.go:10" }) {
			t.Errorf("#nosec suppressed the finding:%s", list(rep.Findings))
		}
	})
	t.Run("imports missing offline: analysed without their types, reported", func(t *testing.T) {
		mod := goMod + "\nrequire github.com/nonexistent-rampart-test/dep v1.2.3\n"
		src := strings.Replace(SQLHandler, "\"net/http\"\n", "\"net/http\"\n\n\tdep \"github.com/nonexistent-rampart-test/dep\"\n", 1)
		src += "\nvar _ = dep.X\n"
		dir := writeTree(t, map[string]string{"go.mod": mod, "db/user.go": src, "api/api.go": "package api\n\nfunc OK() {}\n"})
		rep, err := a.Analyze(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Incomplete) == 0 || !strings.Contains(rep.Summary(), "incomplete") {
			t.Errorf("a package with a missing module is not reported incomplete: %+v", rep)
		}
		if rep.Packages != 2 {
			t.Errorf("packages analysed = %d, want 2 (%q)", rep.Packages, rep.Incomplete)
		}
		// database/sql resolves from the standard library, so the
		// string-built query is still found.
		if !slices.ContainsFunc(rep.Findings, func(f finding.Finding) bool { return f.ID == "G202" && f.Package == "db/user.go:12" }) {
			t.Errorf("G202 not found in the partly typed package:%s", list(rep.Findings))
		}
		t.Log(rep.Summary())
	})
	t.Run("go.mod the toolchain cannot read: reported, not fatal", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"go.mod": "module example.test/shop\n\ngo 9.99\n", "main.go": "package main\n\nfunc main() {}\n"})
		rep, err := a.Analyze(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Incomplete) == 0 || rep.Packages != 0 {
			t.Errorf("report = %+v, want the module listed as not loaded", rep)
		}
		t.Log(rep.Summary())
	})
	t.Run("Go files outside a module are counted", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"tools/gen.go": "package main\n"})
		rep, err := a.Analyze(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Summary() == "" || len(rep.Incomplete) != 1 || !strings.Contains(rep.Incomplete[0], "1 Go files outside any module") {
			t.Errorf("report = %+v", rep)
		}
	})
	t.Run("no Go sources: empty summary", func(t *testing.T) {
		rep, err := a.Analyze(t.Context(), writeTree(t, map[string]string{"README.md": "# shop\n"}))
		if err != nil || rep.Summary() != "" {
			t.Errorf("err = %v, summary = %q", err, rep.Summary())
		}
	})
}

func TestAnalyzeBounds(t *testing.T) {
	files := map[string]string{"go.mod": "module example.test/shop\n\ngo 1.22\n", "a.go": "package shop\n", "b.go": "package shop\n"}
	t.Run("files", func(t *testing.T) {
		a := newAnalyzer(t, Options{MaxFiles: 1})
		if _, err := a.Analyze(t.Context(), writeTree(t, files)); !errors.Is(err, ErrLimit) {
			t.Errorf("err = %v, want ErrLimit", err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		a := newAnalyzer(t, Options{MaxBytes: 20})
		if _, err := a.Analyze(t.Context(), writeTree(t, files)); !errors.Is(err, ErrLimit) {
			t.Errorf("err = %v, want ErrLimit", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		a := newAnalyzer(t, Options{Timeout: time.Nanosecond})
		if _, err := a.Analyze(t.Context(), writeTree(t, files)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
	})
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		rule       string
		sev, conf  issue.Score
		want       finding.Severity
		reasonWhat string
	}{
		{"G202", issue.Medium, issue.High, finding.High, "SQL built from strings is an injection"},
		{"G702", issue.High, issue.High, finding.High, "command injection"},
		{"G101", issue.High, issue.Low, finding.Medium, "a guess does not block"},
		{"G401", issue.Medium, issue.High, finding.Medium, "weak crypto keeps gosec's severity"},
		{"G203", issue.Medium, issue.Low, finding.Medium, "XSS gosec is unsure of stays MEDIUM"},
		{"G107", issue.Medium, issue.Medium, finding.Medium, "CWE-88 is not in the raised set"},
		{"G304", issue.Low, issue.High, finding.Low, "LOW stays LOW"},
	}
	for _, tt := range tests {
		is := &issue.Issue{RuleID: tt.rule, Severity: tt.sev, Confidence: tt.conf, Cwe: issue.GetCweByRule(tt.rule)}
		if got := Severity(is); got != tt.want {
			t.Errorf("%s (%s/%s, %v): %s, want %s (%s)", tt.rule, tt.sev, tt.conf, cweID(is.Cwe), got, tt.want, tt.reasonWhat)
		}
	}
}

func cweID(w *cwe.Weakness) string {
	if w == nil {
		return "no CWE"
	}
	return "CWE-" + w.ID
}
