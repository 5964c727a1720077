package sarif

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

func load(t *testing.T, name string) *Log {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := Parse(f)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return l
}

func describe(t *testing.T, fs []finding.Finding) []string {
	t.Helper()
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s %q", f.Severity, f.ID, f.Package, f.Title))
		if f.Target != f.Package {
			t.Errorf("finding %s: target %q differs from package %q", f.ID, f.Target, f.Package)
		}
	}
	return out
}

func TestFindings(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{
			file: "semgrep.sarif",
			want: []string{
				// error level (by the rule's default) and security-severity 7.5 are High.
				`HIGH javascript.express.security.audit.xss.direct-response-write web/server.js:42 "Semgrep OSS: Detected directly writing to a Response object from user-defined input."`,
				`HIGH python.lang.security.audit.eval-detected tools/gen.py:3 "Semgrep OSS: Detected the use of eval()."`,
				`MEDIUM 10038 http://127.0.0.1:8080/ "ZAP: CSP header not set"`,
				// The suppressed result and the ZAP pass are left out.
				`LOW go.lang.correctness.useless-eqeq cart/cart.go:7 "Semgrep OSS: Useless comparison of x == x"`,
			},
		},
		{
			file: "codeql.sarif",
			want: []string{
				`HIGH go/sql-injection internal/store/orders.go:88 "CodeQL: This query depends on a user-provided value."`,
				// security-severity 6.1 with no level: warning, Medium.
				`MEDIUM go/log-injection internal/api/log.go:12 "CodeQL: Log entry depends on a user-provided value."`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := describe(t, load(t, tt.file).Findings())
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not json", `{"version":`, "unexpected"},
		{"two documents", `{"version":"2.1.0","runs":[]} {}`, "data after the SARIF log"},
		{"array", `[]`, "cannot unmarshal"},
		{"no version", `{"runs":[]}`, "version is required"},
		{"old version", `{"version":"2.0.0","runs":[]}`, `version "2.0.0" is not 2.1.0`},
		{"version not a string", `{"version":2.1,"runs":[]}`, "cannot unmarshal"},
		{"no runs", `{"version":"2.1.0"}`, "runs is required"},
		{"no driver", `{"version":"2.1.0","runs":[{"tool":{}}]}`, "runs[0].tool.driver is required"},
		{"no driver name", `{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`, "runs[0].tool.driver.name is required"},
		{"rule without id", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{}]}}}]}`, "rules[0].id is required"},
		{"bad security-severity", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"a","properties":{"security-severity":"high"}}]}}}]}`, `security-severity "high" is not a number`},
		{"security-severity out of range", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"a","properties":{"security-severity":"11"}}]}}}]}`, "outside 0.0 to 10.0"},
		{"no message", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"a"}]}]}`, "runs[0].results[0].message needs text or id"},
		{"bad level", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"level":"critical","message":{"text":"m"}}]}]}`, `results[0].level "critical"`},
		{"bad kind", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"kind":"bad","message":{"text":"m"}}]}]}`, `.kind "bad"`},
		{"rule index out of range", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleIndex":0,"message":{"text":"m"}}]}]}`, "ruleIndex 0 is outside the run's 0 rules"},
		{"start line 0", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"locations":[{"physicalLocation":{"region":{"startLine":0}}}]}]}]}`, "startLine 0 is less than 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBytes([]byte(tt.doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(strings.NewReader(`{"version":"2.1.0","runs":[],"x":"` + strings.Repeat("a", MaxSize) + `"}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want too large", err)
	}
}

func TestEmptyRunsHaveNoFindings(t *testing.T) {
	l, err := ParseBytes([]byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Semgrep OSS"}},"results":[]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if fs := l.Findings(); len(fs) != 0 {
		t.Errorf("findings %v, want none", fs)
	}
}
