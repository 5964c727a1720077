package app

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/service/servicetest"
	"github.com/rampartci/rampart/services/notifier/internal/chaintest"
)

// Killed by the host while a canary is rolled back, the notifier pages once
// it is started again: the rollback waited in its durable consumer. Its
// reports route answers 503 while it is down, and the restarted notifier,
// with its metrics on a new registry, serves the report.
func TestKilledNotifierPagesAfterRestart(t *testing.T) {
	e := newEnv(t)
	a, err := New(e.options(nil))
	if err != nil {
		t.Fatal(err)
	}
	h := servicetest.Host(t, e.ns, "notifier", a)
	e.app = a
	get := func(path string) int {
		resp, err := http.Get("http://" + h.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if _, err := h.Kill(t.Context(), "notifier", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := get(ReportPath + "r-42"); code != http.StatusServiceUnavailable {
		t.Fatalf("reports route while killed: %d", code)
	}
	rel := chaintest.NewRelease(t, "chain-7", "r-42")
	e.publish(rel.Events...)
	e.record(rel.Events...) // the last is the rollback
	// Nothing pages while the notifier is down.
	if s, _ := h.Component("notifier"); !s.Running && e.pd.Requests() != 0 {
		t.Fatalf("paged while the notifier was down: %d requests", e.pd.Requests())
	}

	e.waitFor("rollback notified after the restart", func() error { return e.completed("r-42") })
	if s, _ := h.Component("notifier"); s.Restarts != 1 || s.Error != "" {
		t.Fatalf("after the restart: %+v", s)
	}
	if got := len(e.pd.Events()); got != 2 {
		t.Fatalf("PagerDuty got %d events, want the page and its report once", got)
	}
	e.waitFor("the report served again", func() error {
		if code := get(ReportPath + "r-42"); code != http.StatusOK {
			return fmt.Errorf("reports route %d", code)
		}
		return nil
	})
}
