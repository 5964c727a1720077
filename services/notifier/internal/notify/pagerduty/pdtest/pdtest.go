// Package pdtest is a local PagerDuty Events API v2 for tests: it checks
// every request against the API's event schema, answers as PagerDuty does,
// and can be told to answer 429, 500 or 400 first.
package pdtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// Event is a trigger the server accepted.
type Event struct {
	RoutingKey string         `json:"routing_key"`
	Action     string         `json:"event_action"`
	DedupKey   string         `json:"dedup_key"`
	Client     string         `json:"client"`
	Payload    Payload        `json:"payload"`
	Raw        map[string]any `json:"-"`
}

// Payload is an event's payload.
type Payload struct {
	Summary       string          `json:"summary"`
	Source        string          `json:"source"`
	Severity      string          `json:"severity"`
	Timestamp     string          `json:"timestamp"`
	Component     string          `json:"component"`
	Group         string          `json:"group"`
	Class         string          `json:"class"`
	CustomDetails json.RawMessage `json:"custom_details"`
}

// Server is the fake Events API.
type Server struct {
	URL string
	t   testing.TB

	mu       sync.Mutex
	script   []int
	requests int
	accepted []Event
}

// NewServer starts a server, closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Respond queues answers: the next requests get these statuses, in order,
// and after them 202.
func (s *Server) Respond(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, statuses...)
}

// Requests is how many requests arrived.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Events are the events answered with 202.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.accepted)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests++
	status := http.StatusAccepted
	if len(s.script) > 0 {
		status, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()

	if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
		s.t.Errorf("pdtest: %s %s, want POST /v2/enqueue", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.t.Errorf("pdtest: Content-Type %q, want application/json", ct)
	}
	ev, problems := Check(body)
	if len(problems) > 0 {
		// The notifier must never send an invalid event: that is a test
		// failure, answered as PagerDuty would.
		s.t.Errorf("pdtest: event breaks the Events API v2 schema: %v\n%s", problems, body)
		answer(w, http.StatusBadRequest, map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": problems})
		return
	}
	switch {
	case status == http.StatusAccepted:
		s.mu.Lock()
		s.accepted = append(s.accepted, *ev)
		s.mu.Unlock()
		answer(w, status, map[string]any{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
	case status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "0")
		answer(w, status, map[string]any{"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."})
	case status == http.StatusBadRequest:
		answer(w, status, map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": []string{"'routing_key' is invalid"}})
	default:
		w.WriteHeader(status)
		fmt.Fprintln(w, "upstream unavailable")
	}
}

func answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

var (
	topFields     = []string{"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
	payloadFields = []string{"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
	actions       = []string{"trigger", "acknowledge", "resolve"}
	severities    = []string{"critical", "error", "warning", "info"}
)

// Check validates an Events API v2 request body and lists what is wrong
// with it.
func Check(body []byte) (*Event, []string) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, []string{"body is not a JSON object: " + err.Error()}
	}
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	for k := range raw {
		if !slices.Contains(topFields, k) {
			bad("unknown field %q", k)
		}
	}
	str := func(m map[string]any, k string) (string, bool) {
		v, ok := m[k]
		if !ok {
			return "", false
		}
		s, isStr := v.(string)
		if !isStr {
			bad("%s is not a string", k)
		}
		return s, true
	}
	if rk, _ := str(raw, "routing_key"); rk == "" {
		bad("routing_key is missing")
	}
	action, _ := str(raw, "event_action")
	if !slices.Contains(actions, action) {
		bad("event_action %q is not trigger, acknowledge or resolve", action)
	}
	dk, hasDK := str(raw, "dedup_key")
	if len(dk) > 255 {
		bad("dedup_key is %d characters, more than 255", len(dk))
	}
	if action != "trigger" && (!hasDK || dk == "") {
		bad("dedup_key is required for %s", action)
	}
	if action == "trigger" {
		payload, ok := raw["payload"].(map[string]any)
		if !ok {
			bad("payload is missing or not an object")
			payload = map[string]any{}
		}
		for k := range payload {
			if !slices.Contains(payloadFields, k) {
				bad("unknown payload field %q", k)
			}
		}
		summary, _ := str(payload, "summary")
		switch {
		case summary == "":
			bad("payload.summary is missing")
		case len(summary) > 1024:
			bad("payload.summary is %d characters, more than 1024", len(summary))
		}
		if src, _ := str(payload, "source"); src == "" {
			bad("payload.source is missing")
		}
		if sev, _ := str(payload, "severity"); !slices.Contains(severities, sev) {
			bad("payload.severity %q is not critical, error, warning or info", sev)
		}
		if ts, ok := str(payload, "timestamp"); ok {
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
				bad("payload.timestamp %q is not ISO 8601: %v", ts, err)
			}
		}
		if cd, ok := payload["custom_details"]; ok {
			if _, isObj := cd.(map[string]any); !isObj {
				bad("payload.custom_details is not an object")
			}
		}
		for _, k := range []string{"component", "group", "class"} {
			str(payload, k)
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, []string{err.Error()}
	}
	ev.Raw = raw
	return &ev, nil
}
