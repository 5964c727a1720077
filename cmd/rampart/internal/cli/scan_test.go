package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// codeQLSARIF is a CodeQL log with one SQL injection (security-severity 8.8)
// and one log injection (6.1).
const codeQLSARIF = `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"CodeQL","version":"2.19.0","rules":[
{"id":"go/sql-injection","properties":{"security-severity":"8.8"}},
{"id":"go/log-injection","properties":{"security-severity":"6.1"}}]}},
"results":[
{"ruleId":"go/sql-injection","ruleIndex":0,"message":{"text":"This query depends on a user-provided value."},
 "locations":[{"physicalLocation":{"artifactLocation":{"uri":"internal/store/orders.go"},"region":{"startLine":88}}}]},
{"ruleId":"go/log-injection","ruleIndex":1,"message":{"text":"Log entry depends on a user-provided value."},
 "locations":[{"physicalLocation":{"artifactLocation":{"uri":"internal/api/log.go"},"region":{"startLine":12}}}]}]}]}`

func TestScanSARIFPublishesSignedVerdict(t *testing.T) {
	m := newMesh(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "verdict.key")
	if _, err := events.LoadOrCreateVerdictKey(keyFile); err != nil {
		t.Fatal(err)
	}
	pub, err := events.LoadVerdictPublicKey(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	sarifFile := filepath.Join(dir, "codeql.sarif")
	if err := os.WriteFile(sarifFile, []byte(codeQLSARIF), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("e", 40)

	res := rampart(t, t.Context(), "", "scan", "sarif", "--commit", sha, "--repo", "github.com/acme/shop", "--app", "shop",
		"--key", keyFile, "--nats", m.url, sarifFile)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	if !strings.HasPrefix(res.stdout, "blocked: commit "+sha+", 1 blocking finding(s)") ||
		!strings.Contains(res.stdout, "HIGH go/sql-injection internal/store/orders.go:88") {
		t.Errorf("stdout:\n%s", res.stdout)
	}
	if n := m.count(t, bus.StreamName, "rampart.scan.shop"); n != 1 {
		t.Fatalf("%d verdicts on rampart.scan.shop, want 1", n)
	}
	s, err := m.js.Stream(t.Context(), bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(t.Context(), "rampart.scan.shop")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.FromMsg(msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := events.VerifyScan(ev, pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Target != sha || v.TargetKind != "source" || v.Outcome != "blocked" || v.Counts["high"] != 1 || v.Counts["medium"] != 1 {
		t.Errorf("verdict %+v", v)
	}

	// The same file again is the same event; JetStream keeps one.
	res = rampart(t, t.Context(), "", "scan", "sarif", "--commit", sha, "--repo", "github.com/acme/shop", "--app", "shop",
		"--key", keyFile, "--nats", m.url, sarifFile)
	if res.code != 0 || !strings.Contains(res.stdout, "(already published)") {
		t.Errorf("second upload: exit %d, stdout %q", res.code, res.stdout)
	}
	if n := m.count(t, bus.StreamName, "rampart.scan.>"); n != 1 {
		t.Errorf("%d verdicts after the same upload twice, want 1", n)
	}
}

func TestScanSARIFRefuses(t *testing.T) {
	m := newMesh(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "verdict.key")
	if _, err := events.LoadOrCreateVerdictKey(keyFile); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.sarif")
	bad := filepath.Join(dir, "bad.sarif")
	_ = os.WriteFile(good, []byte(codeQLSARIF), 0o644)
	_ = os.WriteFile(bad, []byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`), 0o644)
	sha := strings.Repeat("e", 40)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no commit", []string{"--key", keyFile, "--nats", m.url, good}, 2, "--commit is required"},
		{"no file", []string{"--commit", sha, "--key", keyFile, "--nats", m.url}, 2, "want one SARIF FILE"},
		{"invalid SARIF", []string{"--commit", sha, "--key", keyFile, "--nats", m.url, bad}, 1, "tool.driver.name is required; published nothing"},
		{"short commit", []string{"--commit", "abc123", "--key", keyFile, "--nats", m.url, good}, 1, "not a full commit hash"},
		{"no key", []string{"--commit", sha, "--key", filepath.Join(dir, "missing.key"), "--nats", m.url, good}, 1, "start `rampart up`, or pass --key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := rampart(t, t.Context(), "", append([]string{"scan", "sarif"}, tt.args...)...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", res.code, res.stderr, tt.code, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.key")); err == nil {
		t.Error("a missing key was created")
	}
	if n := m.count(t, bus.StreamName, "rampart.scan.>"); n != 0 {
		t.Errorf("%d verdicts published by refused commands", n)
	}
}
