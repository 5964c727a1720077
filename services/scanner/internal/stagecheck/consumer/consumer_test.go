package consumer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const frontend = `consumer: frontend
provider: shop
interactions:
  - name: list items
    request: {method: GET, path: /items, headers: {Accept: application/json}}
    response:
      status: 200
      fields: {items: array, "items[].name": string, "items[].price": number, count: integer}
`

func provider(body string, status int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/items" || r.Header.Get("Accept") != "application/json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
}

func TestReplay(t *testing.T) {
	c, err := Parse("frontend.yaml", []byte(frontend))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, body string
		status     int
		want       string // "" : honoured
	}{
		{"honoured", `{"items": [{"name": "tea", "price": 3.5, "extra": 1}, {"name": "cup", "price": 4}], "count": 2}`, 200, ""},
		{"field renamed", `{"items": [{"name": "tea", "cost": 3.5}], "count": 1}`, 200, "items[0].price is missing"},
		{"type changed", `{"items": [{"name": "tea", "price": "3.50"}], "count": 1}`, 200, "items[0].price is string, want number"},
		{"not an array", `{"items": {"name": "tea"}, "count": 1}`, 200, "items is object, not an array"},
		{"integer became a number", `{"items": [], "count": 1.5}`, 200, "count is number, want integer"},
		{"status", `{"items": [], "count": 0}`, 202, "status 202, want 200"},
		{"not json", `<html>`, 200, "the answer is not JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := provider(tt.body, tt.status)
			defer srv.Close()
			breaks, err := Replay(context.Background(), srv.Client(), srv.URL, c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(breaks) != 0 {
					t.Fatalf("breaks = %v", breaks)
				}
				return
			}
			if len(breaks) != 1 || !strings.Contains(breaks[0].String(), tt.want) {
				t.Fatalf("breaks = %v, want %q", breaks, tt.want)
			}
			if !strings.HasPrefix(breaks[0].String(), "frontend: list items (GET /items): ") {
				t.Fatalf("break = %s", breaks[0])
			}
		})
	}
	if _, err := Replay(context.Background(), http.DefaultClient, "http://127.0.0.1:1", c); err == nil {
		t.Fatal("an unreachable provider honoured the contract")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{"consumer: a\ninteractions: []\n", "at least one"},
		{"interactions: [{name: x, request: {method: GET, path: /}, response: {status: 200}}]\n", "consumer: is required"},
		{"consumer: a\ninteractions: [{name: x, request: {method: FETCH, path: items}, response: {status: 20, fields: {a: text, 'b..c': string}}}]\n",
			`request.method: "FETCH"`},
		{"consumer: a\nextra: 1\n", "field extra not found"},
	} {
		_, err := Parse("c.yaml", []byte(tt.doc))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.doc, err, tt.want)
		}
	}
	_, err := Parse("c.yaml", []byte("consumer: a\ninteractions: [{name: x, request: {method: FETCH, path: items}, response: {status: 20, fields: {a: text, 'b..c': string}}}]\n"))
	for _, w := range []string{`path: "items" must start with /`, "status: 20 is not", `fields[a]: "text" is not one of`, `"b..c" is not a field path`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}
