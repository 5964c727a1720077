package app

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service/servicetest"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Killed by the host, the deployer's routes answer 503 and its router stops
// listening; started again, the routes answer for the new start (its
// manager, its router at the same address, its metrics on a new registry).
func TestKilledDeployerStartsAgain(t *testing.T) {
	ns := natstest.Server(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routerAddr := ln.Addr().String()
	ln.Close()
	pol, err := policy.Parse("rampart.yaml", []byte(fmt.Sprintf(`version: 1
apps:
  - name: shop
    image: registry.example/shop
    environment: production
    router:
      type: local
      local: {listen: %q, stable: "http://127.0.0.1:1", canary: "http://127.0.0.1:2"}
`, routerAddr)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Policy: policy.StoreOf(pol), ScannerKey: make(ed25519.PublicKey, ed25519.PublicKeySize)})
	if err != nil {
		t.Fatal(err)
	}
	a.tokens.Viewer = "viewer-token"
	h := servicetest.Host(t, ns, "deployer", a)
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+h.HTTPAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer viewer-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	first := a.run.Load()
	if code, body := get(adminapi.PathRollouts); code != http.StatusOK {
		t.Fatalf("rollouts: %d %s", code, body)
	}

	if _, err := h.Kill(t.Context(), "deployer", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	code, body := get(adminapi.PathRollouts)
	var apiErr adminapi.Error
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &apiErr) != nil || apiErr.Error != "the deployer is not running" {
		t.Fatalf("rollouts while killed: %d %s", code, body)
	}
	if code, _ := get("/console/rollouts"); code != http.StatusServiceUnavailable {
		t.Fatalf("console while killed: %d", code)
	}
	if _, err := net.DialTimeout("tcp", routerAddr, time.Second); err == nil {
		t.Fatal("the killed deployer's router still listens")
	}
	if _, ok := a.Weight("shop"); ok || a.RouterAddr("shop") != "" {
		t.Fatal("the killed deployer still has a router")
	}

	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s, _ := h.Component("deployer"); !s.Running {
			return fmt.Errorf("not running again: %+v", s)
		}
		return nil
	})
	if r := a.run.Load(); r == nil || r == first || r.manager == first.manager {
		t.Fatal("the restarted deployer serves the first start's run")
	}
	if code, body := get(adminapi.PathRollouts); code != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(body), "[") {
		t.Fatalf("rollouts after the restart: %d %s", code, body)
	}
	if a.RouterAddr("shop") != routerAddr {
		t.Fatalf("the restarted router listens on %q, want %q", a.RouterAddr("shop"), routerAddr)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, policy.RouterCanaryWeight) {
		t.Fatalf("/metrics after the restart lacks the router's metrics: %d", code)
	}
}
