package cli_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	scanner "github.com/rampartci/rampart/services/scanner/app"
)

// scannerService is a real scanner on a test's JetStream, with the fixture
// DB and a SARIF hook token.
type scannerService struct {
	url   string            // its HTTP base URL
	token string            // the SARIF hook token, as a file: reference
	pub   ed25519.PublicKey // what its verdicts are signed with
}

func newScanner(t *testing.T, m *mesh) scannerService {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sarif.token")
	if err := os.WriteFile(tokenFile, []byte("sarif-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "verdict.key")
	app, err := scanner.New(scanner.Options{CacheDir: filepath.Join(dir, "cache"), FixtureDB: true,
		VerdictKeyFile: keyFile, SARIFToken: policy.Secret{File: tokenFile}})
	if err != nil {
		t.Fatal(err)
	}
	opts := service.DefaultOptions("scanner")
	opts.NATSURL, opts.HTTPAddr = m.url, "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, m.ns, "scanner")
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	pub, err := events.LoadVerdictPublicKey(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return scannerService{url: "http://" + h.HTTPAddr(), token: "file:" + tokenFile, pub: pub}
}

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
	sc := newScanner(t, m)
	sarifFile := filepath.Join(t.TempDir(), "codeql.sarif")
	if err := os.WriteFile(sarifFile, []byte(codeQLSARIF), 0o644); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("e", 40)

	res := rampart(t, t.Context(), "", "scan", "sarif", "--commit", sha, "--repo", "github.com/acme/shop", "--app", "shop",
		"--scanner", sc.url, "--token", sc.token, sarifFile)
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
	// Signed by the scanner's own key: the command never holds it.
	v, err := events.VerifyScan(ev, sc.pub)
	if err != nil {
		t.Fatal(err)
	}
	if v.Target != sha || v.TargetKind != "source" || v.Outcome != "blocked" || v.Counts["high"] != 1 || v.Counts["medium"] != 1 {
		t.Errorf("verdict %+v", v)
	}

	// The same file again is the same event; JetStream keeps one.
	res = rampart(t, t.Context(), "", "scan", "sarif", "--commit", sha, "--repo", "github.com/acme/shop", "--app", "shop",
		"--scanner", sc.url, "--token", sc.token, sarifFile)
	if res.code != 0 || !strings.Contains(res.stdout, "(already published)") {
		t.Errorf("second upload: exit %d, stdout %q", res.code, res.stdout)
	}
	if n := m.count(t, bus.StreamName, "rampart.scan.>"); n != 1 {
		t.Errorf("%d verdicts after the same upload twice, want 1", n)
	}
}

func TestScanSARIFRefuses(t *testing.T) {
	m := newMesh(t)
	sc := newScanner(t, m)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.sarif")
	bad := filepath.Join(dir, "bad.sarif")
	_ = os.WriteFile(good, []byte(codeQLSARIF), 0o644)
	_ = os.WriteFile(bad, []byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`), 0o644)
	wrong := filepath.Join(dir, "wrong.token")
	_ = os.WriteFile(wrong, []byte("guess\n"), 0o600)
	sha := strings.Repeat("e", 40)
	to := []string{"--scanner", sc.url, "--token", sc.token}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no commit", append([]string{good}, to...), 2, "--commit is required"},
		{"no file", append([]string{"--commit", sha}, to...), 2, "want one SARIF FILE"},
		{"invalid SARIF", append([]string{"--commit", sha, bad}, to...), 1, "tool.driver.name is required; published nothing"},
		{"short commit", append([]string{"--commit", "abc123", good}, to...), 1, "not a full commit hash"},
		{"no token", []string{"--commit", sha, "--scanner", sc.url, "--token", "file:" + filepath.Join(dir, "missing.token"), good}, 1, "start `rampart up`, or pass --token"},
		{"wrong token", []string{"--commit", sha, "--scanner", sc.url, "--token", "file:" + wrong, good}, 1, "401 Unauthorized"},
		{"token inline", []string{"--commit", sha, "--scanner", sc.url, "--token", "sarif-secret", good}, 2, "want a reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := rampart(t, t.Context(), "", append([]string{"scan", "sarif"}, tt.args...)...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", res.code, res.stderr, tt.code, tt.want)
			}
		})
	}
	if n := m.count(t, bus.StreamName, "rampart.scan.>"); n != 0 {
		t.Errorf("%d verdicts published by refused commands", n)
	}
}
