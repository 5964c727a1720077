package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rampartci/rampart/services/watcher/internal/ingress"
)

// D1: an alert whose app label is 5,000 characters would name a subject
// the server closes the shared connection for. It is ignored with the
// reason; the watcher stays ready and the next valid alert is an anomaly.
func TestAlertWithAnOverlongAppIsIgnored(t *testing.T) {
	h := newAlertHarness(t)
	long := strings.Repeat("a", 5000)
	code, resp := h.post(ingress.PathAlertmanager, amBody("d1", map[string]string{"alertname": "X", "app": long, "version": "canary"}, "firing"), bearer(amToken))
	if code != http.StatusOK || len(resp.Published) != 0 || len(resp.Ignored) != 1 ||
		!strings.Contains(resp.Ignored[0], "app label") || !strings.Contains(resp.Ignored[0], "(5000 bytes)") || len(resp.Ignored[0]) > 400 {
		t.Fatalf("%d %+v", code, resp)
	}
	if !h.bus.Conn().IsConnected() {
		t.Fatalf("connection %s after the alert", h.bus.Conn().Status())
	}
	if err := h.w.tracker.Ready(); err != nil {
		t.Fatalf("not ready after the alert: %v", err)
	}
	code, resp = h.post(ingress.PathAlertmanager, amBody("d2", map[string]string{"alertname": "X", "app": "shop", "version": "canary"}, "firing"), bearer(amToken))
	if code != http.StatusOK || len(resp.Published) != 1 {
		t.Fatalf("the next valid alert: %d %+v", code, resp)
	}
	if got := h.waitAnomalies(1); len(got) != 1 || got[0].a.RolloutID != "r1" {
		t.Fatalf("anomalies %+v", got)
	}
}

// manyAlerts is one Alertmanager delivery of n firing alerts about shop.
func manyAlerts(n int) []byte {
	alerts := make([]map[string]any, n)
	for i := range alerts {
		alerts[i] = map[string]any{
			"status": "firing", "labels": map[string]string{"alertname": fmt.Sprintf("A%d", i), "app": "shop"},
			"startsAt": "2026-05-01T12:00:00Z", "fingerprint": fmt.Sprintf("f%d", i),
		}
	}
	b, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "rampart", "alerts": alerts})
	return b
}

// One delivery with more alerts than the cap is refused whole: 413 with
// the limit and the flag, nothing published.
func TestAlertmanagerDeliveryCap(t *testing.T) {
	h := newAlertHarness(t)
	for _, n := range []int{ingress.DefaultMaxAlerts + 1, 3000} {
		code, resp := h.post(ingress.PathAlertmanager, manyAlerts(n), bearer(amToken))
		if code != http.StatusRequestEntityTooLarge || len(resp.Published) != 0 ||
			!strings.Contains(resp.Error, fmt.Sprintf("%d alerts in one delivery, over the limit of 100", n)) ||
			!strings.Contains(resp.Error, "--max-alerts-per-delivery") {
			t.Fatalf("%d alerts: %d %+v", n, code, resp)
		}
	}
	if n := len(h.anomalies()); n != 0 {
		t.Fatalf("%d anomalies published from refused deliveries", n)
	}
	code, resp := h.post(ingress.PathAlertmanager, manyAlerts(3), bearer(amToken))
	if code != http.StatusOK || len(resp.Published) != 3 {
		t.Fatalf("3 alerts: %d %+v", code, resp)
	}
}

// D7: an anomaly over the bus's maximum payload is the sender's problem:
// 413 naming the limit, not 503 "retry".
func TestOversizeAnomalyIs413(t *testing.T) {
	h := newAlertHarness(t)
	env := strings.Repeat("e", 600<<10) // carried twice in the anomaly: over 1 MiB
	code, resp := h.post(ingress.PathAlertmanager, amBody("big", map[string]string{"alertname": "X", "app": "cart", "environment": env}, "firing"), bearer(amToken))
	limit := fmt.Sprintf("limit %d", h.bus.Conn().MaxPayload())
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(resp.Error, limit) {
		t.Fatalf("%d %.300s, want 413 naming the %s", code, resp.Error, limit)
	}
	if !h.bus.Conn().IsConnected() {
		t.Fatalf("connection %s", h.bus.Conn().Status())
	}
}
