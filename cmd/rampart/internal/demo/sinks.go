package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
)

// pagerSink stands in for PagerDuty's Events API v2: it accepts events as
// PagerDuty does (202 with the dedup key) and keeps them.
type pagerSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []map[string]any
}

func newPagerSink() *pagerSink {
	p := &pagerSink{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" || json.Unmarshal(body, &ev) != nil {
			http.Error(w, `{"status":"invalid event","message":"Event object is invalid"}`, http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": str(ev["dedup_key"])})
	}))
	return p
}

func (p *pagerSink) pages() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.events...)
}

// incidents counts the events of each incident (dedup key): a rollback is
// one incident, paged and then given its report.
func (p *pagerSink) incidents() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, ev := range p.events {
		out[str(ev["dedup_key"])]++
	}
	return out
}

// chatSink stands in for a Slack incoming webhook.
type chatSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	posts int
}

func newChatSink() *chatSink {
	c := &chatSink{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		c.posts++
		c.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	return c
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
