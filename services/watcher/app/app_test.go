package app_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/watcher/app"
)

const policyYAML = `version: 1
apps:
  - name: shop
    image: registry.example.com/shop
    environment: prod
    router:
      type: local
      local: {listen: 127.0.0.1:18081, stable: http://127.0.0.1:19001, canary: http://127.0.0.1:19002}
    analysis:
      interval: 1s
      siem: {enabled: true}
`

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(pol, []byte(policyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, "am-token")
	if err := os.WriteFile(tokFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SIEM_KEY", "k")
	t.Setenv("RAMPART_ANALYSIS_INTERVAL", "2s")

	opts := app.DefaultOptions()
	fs := flag.NewFlagSet("watcher", flag.ContinueOnError)
	opts.BindFlags(fs)
	err := service.ParseFlags(fs, []string{"--policy", pol, "--alertmanager-token", "file:" + tokFile, "--siem-secret", "env:TEST_SIEM_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	if opts.PolicyFile != pol || opts.AlertmanagerToken.File != tokFile || opts.SIEMSecret.Env != "TEST_SIEM_KEY" || opts.Interval != 2*time.Second {
		t.Fatalf("%+v", opts)
	}
	if _, err := app.New(opts); err != nil {
		t.Fatal(err)
	}
	if f := fs.Lookup("alertmanager-token"); f.Value.String() != "file:"+tokFile {
		t.Fatalf("flag shows %q", f.Value.String())
	}
	// A secret given inline is refused, never echoed.
	fs = flag.NewFlagSet("watcher", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts.BindFlags(fs)
	if err := fs.Parse([]string{"--siem-secret", "hunter2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(opts); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "--siem-secret: want a reference") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts app.Options
		want string
	}{
		{"interval below the minimum", app.Options{Interval: 500 * time.Millisecond}, "below the minimum"},
		{"missing policy", app.Options{PolicyFile: "/nonexistent/rampart.yaml"}, "no such file"},
		{"unset secret", app.Options{SIEMSecret: policy.Secret{Env: "RAMPART_TEST_UNSET_SECRET"}}, "--siem-secret"},
		{"user without password", app.Options{AlertmanagerUser: "am"}, "go together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := app.New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The component in a real service host: ready once rebuilt, webhooks on the
// host's listener with basic auth, and a clean stop.
func TestInHost(t *testing.T) {
	ns := natstest.Server(t, "")
	t.Setenv("TEST_AM_PASSWORD", "pw")
	a, err := app.New(app.Options{
		Policy:               policy.StoreOf(&policy.Policy{Version: 1}),
		AlertmanagerUser:     "am",
		AlertmanagerPassword: policy.Secret{Env: "TEST_AM_PASSWORD"},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, ns, "watcher")
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), a)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + h.HTTPAddr()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	body := []byte(`{"version":"4","alerts":[{"status":"firing","labels":{"app":"shop"},"startsAt":"2026-05-01T12:00:00Z","fingerprint":"ab"}]}`)
	for _, tc := range []struct {
		user, pass string
		code       int
	}{{"am", "pw", 200}, {"am", "nope", 401}} {
		req, _ := http.NewRequest(http.MethodPost, base+"/hooks/alertmanager", bytes.NewReader(body))
		req.SetBasicAuth(tc.user, tc.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Fatalf("%s:%s → %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.code)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`rampart_watcher_webhook_requests_total{code="401",hook="alertmanager"} 1`)) {
		t.Fatalf("metrics:\n%s", metrics)
	}
}
