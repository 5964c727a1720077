package cli

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/tlsgen"
)

// syncBuffer is a bytes.Buffer safe to write from the command and read from the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	natsLine = regexp.MustCompile(`NATS\s+((?:nats|tls)://\S+)`)
	httpLine = regexp.MustCompile(`HTTP\s+(https?://\S+)`)
)

// addrs waits for `rampart up` to print its addresses.
func addrs(t *testing.T, out interface{ String() string }) (natsURL, httpURL string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		n, h := natsLine.FindStringSubmatch(out.String()), httpLine.FindStringSubmatch(out.String())
		if n == nil || h == nil {
			return fmt.Errorf("rampart up has not printed its addresses; output so far:\n%s", out.String())
		}
		natsURL, httpURL = n[1], h[1]
		return nil
	})
	trustPrintedCA(t, out.String(), httpURL)
	return natsURL, httpURL
}

// adminConn connects to `rampart up` on data as its admin identity.
func adminConn(t *testing.T, natsURL, data string) *nats.Conn {
	t.Helper()
	auth, err := natsauth.Identity{Name: natsauth.Admin, NKeyFile: filepath.Join(data, "nats-keys", "admin.nk")}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, append(auth, nats.RootCAs(filepath.Join(data, "tls", "ca.crt")))...)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func publishCommit(t *testing.T, natsURL, data, id string) {
	t.Helper()
	nc := adminConn(t, natsURL, data)
	defer nc.Close()
	b, err := bus.New(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.NewCommit(events.Meta{ID: id, Source: "/test/up", ChainID: "chain-up", App: "shop"},
		events.Commit{Repository: "github.com/acme/shop", SHA: "sha-" + id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

// waitLedger polls the ledger's HTTP API until it has recorded the events
// with the given ids (the services add events of their own, such as the
// scanner's verdict on a commit).
func waitLedger(t *testing.T, httpURL string, ids ...string) {
	t.Helper()
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		resp, err := clientFor(httpURL).Get(httpURL + "/ledger/entries?from=0")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			Entries []struct {
				Entry struct {
					EventID string `json:"eventId"`
				} `json:"entry"`
			} `json:"entries"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			return fmt.Errorf("%s: %s", resp.Status, raw)
		}
		for _, id := range ids {
			found := false
			for _, e := range body.Entries {
				found = found || e.Entry.EventID == id
			}
			if !found {
				return fmt.Errorf("event %s not in the ledger's %d entries", id, len(body.Entries))
			}
		}
		return nil
	})
}

func TestUpServesHealthAndRecordsEvents(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"up", "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, nil, &out, &errOut)
	}()
	natsURL, httpURL := addrs(t, &out)

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			resp, err := clientFor(httpURL).Get(httpURL + path)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				return fmt.Errorf("%s: %s %s", path, resp.Status, body)
			}
			if path == "/metrics" && !bytes.Contains(body, []byte("rampart_ledger_")) {
				return fmt.Errorf("/metrics has no rampart_ledger_ metrics")
			}
			return nil
		})
	}
	publishCommit(t, natsURL, data, "up-1")
	waitLedger(t, httpURL, "up-1")

	checkCredentials(t, data, httpURL, out.String())
	checkOverlongApp(t, data, httpURL)

	// Every service holds its durable consumer.
	nc := adminConn(t, natsURL, data)
	js, _ := jetstream.New(nc)
	for _, durable := range []string{"ledger", "scanner", "deployer", "watcher", "notifier"} {
		if _, err := js.Consumer(t.Context(), bus.StreamName, durable); err != nil {
			t.Errorf("consumer %s: %v", durable, err)
		}
	}
	nc.Close()

	cancel()
	select {
	case code := <-done:
		if code != 0 || !bytes.Contains([]byte(out.String()), []byte("stopped cleanly")) {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("rampart up did not stop within 20s of Ctrl-C")
	}
}

// D6: a non-loopback HTTP listener is refused with the reason, unless
// forced.
func TestUpRefusesAnOpenListener(t *testing.T) {
	var out, errOut syncBuffer
	code := Main(t.Context(), []string{"up", "--http", "0.0.0.0:0", "--nats-listen", "127.0.0.1:0", "--data", t.TempDir()}, nil, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "--http 0.0.0.0:0: a non-loopback HTTP listener needs TLS") ||
		!strings.Contains(errOut.String(), "--insecure-listen") {
		t.Fatalf("exit %d\nstderr: %s", code, errOut.String())
	}
}

// post sends body to url with the headers and a JSON content type.
func post(t *testing.T, url string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	resp, err := clientFor(url).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// secretIn reads a credential rampart up wrote in its data directory.
func secretIn(t *testing.T, data, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// checkCredentials: D8, the Git webhooks' credentials are generated (mode
// 0600) and printed like the others: a signed GitHub ping and a GitLab
// request with the token get past authentication (202 ignored, 400
// unsupported), not 401.
func checkCredentials(t *testing.T, data, httpURL, printed string) {
	t.Helper()
	for _, f := range []string{"deployer/operator.token", "deployer/viewer.token", "scanner/github.secret", "scanner/gitlab.token"} {
		path := filepath.Join(data, f)
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 || !strings.Contains(printed, path) {
			t.Errorf("%s: %v (mode %v), printed: %v", f, err, st, strings.Contains(printed, path))
		}
	}
	ping := []byte(`{"zen":"Design for failure.","hook_id":1}`)
	mac := hmac.New(sha256.New, []byte(secretIn(t, data, "scanner/github.secret")))
	mac.Write(ping)
	for _, tc := range []struct {
		header http.Header
		code   int
	}{
		{http.Header{"X-Github-Event": {"ping"}, "X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}, http.StatusAccepted},
		{http.Header{"X-Github-Event": {"ping"}, "X-Hub-Signature-256": {"sha256=" + strings.Repeat("0", 64)}}, http.StatusUnauthorized},
		{http.Header{"X-Gitlab-Event": {"Merge Request Hook"}, "X-Gitlab-Token": {secretIn(t, data, "scanner/gitlab.token")}}, http.StatusBadRequest},
		{http.Header{"X-Gitlab-Event": {"Merge Request Hook"}, "X-Gitlab-Token": {"guess"}}, http.StatusUnauthorized},
	} {
		if code, body := post(t, httpURL+"/hooks/git", tc.header, ping); code != tc.code {
			t.Errorf("/hooks/git %v: %d %s, want %d", tc.header, code, body, tc.code)
		}
	}
}

// checkOverlongApp: D1, an alert whose app label is 5,000 characters once
// closed the mesh's shared connection for good. It is ignored with the
// reason, the mesh stays ready and the next valid alert is recorded.
func checkOverlongApp(t *testing.T, data, httpURL string) {
	t.Helper()
	alert := func(fingerprint, app string) (int, string) {
		body, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "rampart", "alerts": []map[string]any{{
			"status": "firing", "labels": map[string]string{"alertname": "HighErrorRate", "app": app},
			"startsAt": "2026-05-01T12:00:00Z", "fingerprint": fingerprint}}})
		return post(t, httpURL+"/hooks/alertmanager", http.Header{"Authorization": {"Bearer " + secretIn(t, data, "watcher/alertmanager.token")}}, body)
	}
	if code, body := alert("d1", strings.Repeat("a", 5000)); code != http.StatusOK || !strings.Contains(body, `"ignored"`) || !strings.Contains(body, "(5000 bytes)") {
		t.Fatalf("5,000-character app: %d %.300s", code, body)
	}
	resp, err := clientFor(httpURL).Get(httpURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz after the alert: %s", resp.Status)
	}
	code, body := alert("d2", "shop")
	var answer struct{ Published []string }
	if err := json.Unmarshal([]byte(body), &answer); code != http.StatusOK || err != nil || len(answer.Published) != 1 {
		t.Fatalf("the next valid alert: %d %s", code, body)
	}
	waitLedger(t, httpURL, answer.Published[0])
}

func TestUpRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--nats-listen", "0.0.0.0:4222", "--data", t.TempDir()},
		{"up", "--http", "nonsense", "--nats-listen", "127.0.0.1:0", "--data", t.TempDir()},
		{"up", "--log-level", "loud"},
		{"up", "extra"},
		{"up", "--replicas", "3", "--data", t.TempDir()},
		{"up", "--replicas", "2", "--nats", "nats://127.0.0.1:1", "--data", t.TempDir()},
	} {
		var out, errOut syncBuffer
		if code := Main(t.Context(), args, nil, &out, &errOut); code == 0 {
			t.Errorf("%v: exit 0, want failure", args)
		} else if errOut.String() == "" {
			t.Errorf("%v: no error message", args)
		}
	}
}

// The child process of TestUpSurvivesKill9 runs `rampart up` from the test binary.
func TestMain(m *testing.M) {
	if args := os.Getenv("RAMPART_TEST_UP_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(Main(context.Background(), argv, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func startUpProcess(t *testing.T, data string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	argv, _ := json.Marshal([]string{"up", "--data", data, "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RAMPART_TEST_UP_ARGS="+string(argv))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}

func TestUpSurvivesKill9(t *testing.T) {
	data := t.TempDir()
	cmd, out := startUpProcess(t, data)
	natsURL, httpURL := addrs(t, out)
	publishCommit(t, natsURL, data, "before-kill")
	waitLedger(t, httpURL, "before-kill")

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, out2 := startUpProcess(t, data)
	natsURL, httpURL = addrs(t, out2)
	publishCommit(t, natsURL, data, "after-kill")
	waitLedger(t, httpURL, "before-kill", "after-kill")

	c, err := client.New(httpURL, clientFor(httpURL))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(data + "/ledger/ledger.key.pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(string(bytes.TrimSpace(pub)))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		res, err := c.Verify(t.Context(), v)
		if err != nil {
			return err
		}
		if res.Entries < 2 || res.Unanchored != 0 {
			return fmt.Errorf("verified %d entries (%d after the last checkpoint)", res.Entries, res.Unanchored)
		}
		return nil
	})
}

// The operator commands connect as the admin identity `rampart up` wrote in
// the data directory, by default .rampart/nats-keys/admin.nk; nothing
// connects without one.
func TestOperatorCommandsAsAdmin(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"up", "--nats-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, nil, &out, &errOut)
	}()
	t.Cleanup(func() { cancel(); <-done })
	natsURL, httpURL := addrs(t, &out)

	ev, err := events.NewCommit(events.Meta{ID: "op-1", Source: "/test/op", ChainID: "chain-op", App: "shop"},
		events.Commit{Repository: "github.com/acme/shop", SHA: "sha-op-1"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := events.Structured(ev)
	if err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (int, string) {
		var o, e bytes.Buffer
		code := Main(t.Context(), args, bytes.NewBufferString(stdin), &o, &e)
		return code, o.String() + e.String()
	}
	if code, s := run(string(doc), "events", "publish", "--nats", natsURL, "-"); code != 0 {
		t.Fatalf("events publish: exit %d: %s", code, s)
	}
	waitLedger(t, httpURL, "op-1")
	if code, s := run("", "replay", "--nats", natsURL, "--since", "1h"); code != 0 || !strings.Contains(s, "replayed") {
		t.Fatalf("replay: exit %d: %s", code, s)
	}
	// Over HTTPS the commands trust .rampart/tls/ca.crt by default, and
	// only the CA they are given.
	for _, args := range [][]string{{"ledger", "verify"}, {"rollout", "list"}} {
		if code, s := run("", append(args, "--server", httpURL)...); code != 0 {
			t.Fatalf("%v with the default CA: exit %d: %s", args, code, s)
		}
	}
	if code, s := run("", "ledger", "verify", "--server", httpURL, "--ca-file", filepath.Join(work, ".rampart", "nats-keys", "server.conf")); code != 2 || !strings.Contains(s, "--ca-file") {
		t.Fatalf("ledger verify with a file that holds no CA: exit %d: %s", code, s)
	}
	other, err := tlsgen.Ensure(filepath.Join(work, "other-ca"), tlsgen.LocalHosts...)
	if err != nil {
		t.Fatal(err)
	}
	if code, s := run("", "events", "tail", "--nats", natsURL, "--ca-file", other.CA); code != 1 || !strings.Contains(s, "not signed by a CA this command trusts") {
		t.Fatalf("events tail trusting another CA: exit %d: %s", code, s)
	}
	if code, s := run("", "rollout", "list", "--server", httpURL, "--ca-file", other.CA); code != 1 || !strings.Contains(s, "certificate signed by unknown authority") {
		t.Fatalf("rollout list trusting another CA: exit %d: %s", code, s)
	}

	// Another identity than the admin's, or none, is refused.
	if code, s := run(string(doc), "events", "publish", "--nats", natsURL, "--nats-nkey", filepath.Join(".rampart", "nats-keys", "notifier.nk"), "-"); code == 0 || !strings.Contains(s, "Permissions Violation") {
		t.Fatalf("events publish as the notifier: exit 0: %s", s)
	}
	if code, s := run(string(doc), "events", "publish", "--nats", natsURL, "--nats-nkey", filepath.Join(work, "missing.nk"), "-"); code != 1 || !strings.Contains(s, "admin identity") {
		t.Fatalf("events publish without a key: exit %d: %s", code, s)
	}
	stranger := filepath.Join(work, "stranger.nk")
	if _, err := natsauth.EnsureKey(stranger); err != nil {
		t.Fatal(err)
	}
	if code, s := run("", "events", "tail", "--nats", natsURL, "--nats-nkey", stranger); code != 1 || !strings.Contains(s, "refused") {
		t.Fatalf("events tail with an unknown key: exit %d: %s", code, s)
	}
}
