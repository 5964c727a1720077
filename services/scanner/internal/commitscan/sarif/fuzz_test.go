package sarif

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, every
// error about the input must wrap ErrInvalid, and an accepted log must turn
// into findings without panicking.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"semgrep.sarif", "codeql.sarif"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"a"}]}},"results":[{"ruleIndex":-1,"rule":{"index":0},"message":{"id":"m"}}]}]}`))
	f.Add([]byte(`{"version":"2.1.0","runs":null}`))
	f.Add([]byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"a","properties":{"security-severity":7}}]}},"results":[{"ruleId":"a","message":{"text":"m"}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseBytes(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for _, f := range l.Findings() {
			if f.ID == "" || f.Package == "" {
				t.Fatalf("finding without id or tool: %+v", f)
			}
		}
	})
}
