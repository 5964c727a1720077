package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service/servicetest"
	"github.com/rampartci/rampart/services/watcher/app"
)

// Killed by the host, the watcher's webhooks answer 503 (a sender retries)
// and /readyz says so; started again, with its metrics on a new registry,
// it takes requests again.
func TestKilledWatcherStartsAgain(t *testing.T) {
	ns := natstest.Server(t, "")
	a, err := app.New(app.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	h := servicetest.Host(t, ns, "watcher", a)
	do := func(method, path string) int {
		req, _ := http.NewRequestWithContext(t.Context(), method, "http://"+h.HTTPAddr()+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// No SIEM secret is configured: a running watcher refuses the
	// unsigned alert.
	if code := do("POST", "/hooks/siem"); code != http.StatusUnauthorized {
		t.Fatalf("siem hook: %d", code)
	}
	if _, err := h.Kill(t.Context(), "watcher", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if code := do("POST", "/hooks/siem"); code != http.StatusServiceUnavailable {
		t.Fatalf("siem hook while killed: %d", code)
	}
	if code := do("GET", "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while killed: %d", code)
	}
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if code := do("GET", "/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz %d", code)
		}
		return nil
	})
	if code := do("POST", "/hooks/siem"); code != http.StatusUnauthorized {
		t.Fatalf("siem hook after the restart: %d", code)
	}
	if s, _ := h.Component("watcher"); s.Restarts != 1 || s.Error != "" {
		t.Fatalf("after the restart: %+v", s)
	}
}
