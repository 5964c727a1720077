package pagerduty

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/notify/pagerduty/pdtest"
)

func TestTrigger(t *testing.T) {
	srv := pdtest.NewServer(t)
	n, err := New(Config{RoutingKey: "R0UT1NGKEY0000000000000000000000", Severity: "error", Endpoint: srv.URL + "/v2/enqueue"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	details := map[string]any{"rolloutId": "r-1", "trafficAtAbort": 5}
	resp, err := n.Trigger(t.Context(), Alert{DedupKey: "r-1", Summary: strings.Repeat("é", 600), Source: "shop (prod)", Component: "shop", Group: "prod",
		Class: "http-5xx-ratio", Timestamp: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Details: details})
	if err != nil {
		t.Fatal(err)
	}
	if resp.DedupKey != "r-1" {
		t.Errorf("response dedup key %q", resp.DedupKey)
	}
	evs := srv.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events accepted, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Action != "trigger" || ev.DedupKey != "r-1" || ev.Payload.Severity != "error" || ev.Payload.Source != "shop (prod)" || ev.Client != "Rampart" {
		t.Errorf("event = %+v", ev)
	}
	if len(ev.Payload.Summary) > MaxSummary || !strings.HasSuffix(ev.Payload.Summary, "…") {
		t.Errorf("summary of %d bytes not truncated to %d", len(ev.Payload.Summary), MaxSummary)
	}
	var got map[string]any
	if err := json.Unmarshal(ev.Payload.CustomDetails, &got); err != nil || got["rolloutId"] != "r-1" {
		t.Errorf("custom_details = %s", ev.Payload.CustomDetails)
	}
	if uri := n.TicketURI("r 1"); uri != srv.URL+"/v2/enqueue?dedup_key=r+1" {
		t.Errorf("ticket URI = %s", uri)
	}
}

func TestTriggerErrors(t *testing.T) {
	tests := []struct {
		status    int
		retryable bool
		reason    string
	}{
		{http.StatusTooManyRequests, true, "throttle event"},
		{http.StatusInternalServerError, true, "upstream unavailable"},
		{http.StatusBadRequest, false, "invalid event: Event object is invalid: 'routing_key' is invalid"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := pdtest.NewServer(t)
			srv.Respond(tt.status)
			n, err := New(Config{RoutingKey: "k", Endpoint: srv.URL}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = n.Trigger(t.Context(), Alert{DedupKey: "r-1", Summary: "s", Source: "shop"})
			var ne *notify.Error
			if !errors.As(err, &ne) || ne.Status != tt.status || ne.Retryable != tt.retryable || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v (%#v), want status %d retryable %v with %q", err, ne, tt.status, tt.retryable, tt.reason)
			}
		})
	}
	t.Run("no answer", func(t *testing.T) {
		n, _ := New(Config{RoutingKey: "k", Endpoint: "http://127.0.0.1:1"}, nil, nil)
		_, err := n.Trigger(t.Context(), Alert{DedupKey: "r-1", Summary: "s", Source: "shop"})
		if !notify.Retryable(err) {
			t.Fatalf("connection refused: %v, want retryable", err)
		}
	})
}

func TestNewRejects(t *testing.T) {
	for _, c := range []Config{{}, {RoutingKey: "k", Severity: "page"}, {RoutingKey: "k", Endpoint: "ftp://x"}} {
		if _, err := New(c, nil, nil); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestDedupKeyAndTruncate(t *testing.T) {
	if DedupKey("r-1") != "r-1" {
		t.Error("short key changed")
	}
	if k := DedupKey(strings.Repeat("x", 300)); len(k) > MaxDedupKey || !strings.HasPrefix(k, "sha256:") {
		t.Errorf("long key = %q", k)
	}
	if got := Truncate("abcdef", 5); got != "ab…" {
		t.Errorf("Truncate = %q", got)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"routing_key":"k","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"info"}}`))
	f.Add([]byte(`{"event_action":"resolve"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, problems := pdtest.Check(b)
		if (ev == nil) == (len(problems) == 0) {
			t.Fatalf("Check returned event %v and problems %v", ev, problems)
		}
	})
}
