// Package slacktest is a local Slack incoming webhook for tests: it checks
// each message against Block Kit's rules and limits and can be told to
// refuse the next ones.
package slacktest

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
	"unicode/utf8"

	"github.com/rampartci/rampart/services/notifier/internal/notify"
)

// Server is the fake webhook.
type Server struct {
	URL string
	t   testing.TB

	mu       sync.Mutex
	script   []int
	requests int
	messages []notify.Message
}

// NewServer starts a webhook at URL, closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL + "/services/T000/B000/XXXX"
	return s
}

// Respond queues answers for the next requests; after them, 200 ok.
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

// Messages are the messages answered with 200.
func (s *Server) Messages() []notify.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests++
	status := http.StatusOK
	if len(s.script) > 0 {
		status, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("slacktest: %s with Content-Type %q, want a POST of application/json", r.Method, r.Header.Get("Content-Type"))
	}
	m, problems := Check(body)
	if len(problems) > 0 {
		s.t.Errorf("slacktest: message breaks Block Kit rules: %v\n%s", problems, body)
		http.Error(w, "invalid_blocks", http.StatusBadRequest)
		return
	}
	switch status {
	case http.StatusOK:
		s.mu.Lock()
		s.messages = append(s.messages, *m)
		s.mu.Unlock()
		fmt.Fprint(w, "ok")
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "rate_limited", status)
	case http.StatusNotFound:
		http.Error(w, "no_service", status)
	default:
		http.Error(w, "internal_error", status)
	}
}

// Check validates an incoming-webhook body: known fields, fallback text,
// and the blocks this notifier uses within their limits.
func Check(body []byte) (*notify.Message, []string) {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	var m notify.Message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, []string{"not a message of text and blocks: " + err.Error()}
	}
	if m.Text == "" {
		bad("text (the notification fallback) is empty")
	}
	if len(m.Blocks) == 0 || len(m.Blocks) > notify.MaxBlocks {
		bad("%d blocks, want 1 to %d", len(m.Blocks), notify.MaxBlocks)
	}
	text := func(where string, t *notify.Text, types []string, limit int) {
		switch {
		case t == nil:
			bad("%s: text is missing", where)
		case !slices.Contains(types, t.Type):
			bad("%s: text type %q, want one of %v", where, t.Type, types)
		case t.Text == "":
			bad("%s: text is empty", where)
		case utf8.RuneCountInString(t.Text) > limit:
			bad("%s: text is %d characters, more than %d", where, utf8.RuneCountInString(t.Text), limit)
		}
	}
	both := []string{"plain_text", "mrkdwn"}
	for i, b := range m.Blocks {
		at := fmt.Sprintf("blocks[%d] (%s)", i, b.Type)
		switch b.Type {
		case "header":
			text(at, b.Text, []string{"plain_text"}, notify.MaxHeader)
			if b.Fields != nil || b.Elements != nil {
				bad("%s: a header has only text", at)
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				bad("%s: a section needs text or fields", at)
			}
			if b.Text != nil {
				text(at, b.Text, both, notify.MaxSectionText)
			}
			if len(b.Fields) > notify.MaxFields {
				bad("%s: %d fields, more than %d", at, len(b.Fields), notify.MaxFields)
			}
			for j := range b.Fields {
				text(fmt.Sprintf("%s.fields[%d]", at, j), &b.Fields[j], both, notify.MaxFieldText)
			}
			if b.Elements != nil {
				bad("%s: a section has no elements", at)
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > notify.MaxContextElems {
				bad("%s: %d elements, want 1 to %d", at, len(b.Elements), notify.MaxContextElems)
			}
			for j := range b.Elements {
				text(fmt.Sprintf("%s.elements[%d]", at, j), &b.Elements[j], both, notify.MaxSectionText)
			}
			if b.Text != nil || b.Fields != nil {
				bad("%s: a context has only elements", at)
			}
		case "divider":
			if b.Text != nil || b.Fields != nil || b.Elements != nil {
				bad("%s: a divider has no content", at)
			}
		default:
			bad("%s: block type not used by Rampart", at)
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return &m, nil
}
