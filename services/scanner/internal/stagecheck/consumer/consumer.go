// Package consumer is consumer-driven contract testing: a consumer of an
// API records the requests it makes and the response fields it relies on,
// with their types, in a contract file; the file is replayed against the
// provider running in a stage, and every expectation the provider no
// longer meets is a break. A spec diff catches the changes a provider
// declares; replaying catches the ones it makes without saying so.
package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Contract is one consumer's expectations of one provider:
//
//	consumer: frontend
//	interactions:
//	  - name: list items
//	    request: {method: GET, path: /items}
//	    response:
//	      status: 200
//	      fields: {items: array, "items[].name": string, "items[].price": number}
type Contract struct {
	Consumer     string        `yaml:"consumer"`
	Provider     string        `yaml:"provider"`
	Interactions []Interaction `yaml:"interactions"`
	File         string        `yaml:"-"`
}

// Interaction is one request and what the consumer reads of its answer.
type Interaction struct {
	Name     string   `yaml:"name"`
	Request  Request  `yaml:"request"`
	Response Response `yaml:"response"`
}

// Request is what the consumer sends.
type Request struct {
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
}

// Response is what the consumer relies on: the status, and the type of each
// JSON field it reads, by path: "a.b" is field b of object a, "a[].b" is
// field b of every element of array a.
type Response struct {
	Status int               `yaml:"status"`
	Fields map[string]string `yaml:"fields"`
}

// Types a field may have.
var Types = []string{"string", "number", "integer", "boolean", "array", "object", "null"}

// MaxFile bounds a contract file.
const MaxFile = 1 << 20

// ErrInvalid is wrapped by every error about a contract file's content.
var ErrInvalid = errors.New("invalid contract")

// Load reads and checks a contract file.
func Load(path string) (Contract, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Contract{}, fmt.Errorf("read contract: %w", err)
	}
	return Parse(path, data)
}

// Parse checks a contract; file names it in errors.
func Parse(file string, data []byte) (Contract, error) {
	if len(data) > MaxFile {
		return Contract{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, file, MaxFile)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Contract
	if err := dec.Decode(&c); err != nil {
		return Contract{}, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	c.File = file
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Consumer == "" {
		bad("consumer: is required")
	}
	if len(c.Interactions) == 0 {
		bad("interactions: at least one is required")
	}
	for i, in := range c.Interactions {
		at := fmt.Sprintf("interactions[%d]", i)
		if in.Name == "" {
			bad("%s.name: is required", at)
		}
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}, in.Request.Method) {
			bad("%s.request.method: %q is not GET, POST, PUT, PATCH, DELETE or HEAD", at, in.Request.Method)
		}
		if !strings.HasPrefix(in.Request.Path, "/") {
			bad("%s.request.path: %q must start with /", at, in.Request.Path)
		}
		if in.Response.Status < 100 || in.Response.Status > 599 {
			bad("%s.response.status: %d is not an HTTP status", at, in.Response.Status)
		}
		for _, path := range sortedKeys(in.Response.Fields) {
			if !slices.Contains(Types, in.Response.Fields[path]) {
				bad("%s.response.fields[%s]: %q is not one of %s", at, path, in.Response.Fields[path], strings.Join(Types, ", "))
			}
			if path == "" || strings.Contains(path, "..") || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") {
				bad("%s.response.fields: %q is not a field path", at, path)
			}
		}
	}
	if len(problems) > 0 {
		return Contract{}, fmt.Errorf("%w: %s: %s", ErrInvalid, file, strings.Join(problems, "; "))
	}
	return c, nil
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// Break is one interaction the provider no longer honours.
type Break struct {
	Consumer    string
	Interaction string
	Request     string   // "GET /items"
	Problems    []string // each expectation not met
}

// String is "frontend: list items (GET /items): items[0].price is missing".
func (b Break) String() string {
	return fmt.Sprintf("%s: %s (%s): %s", b.Consumer, b.Interaction, b.Request, strings.Join(b.Problems, "; "))
}

// MaxBody bounds the answer read for one interaction.
const MaxBody = 4 << 20

// Replay sends each interaction of c to baseURL and returns the breaks. It
// fails only when the provider cannot be reached.
func Replay(ctx context.Context, hc *http.Client, baseURL string, c Contract) ([]Break, error) {
	var out []Break
	for _, in := range c.Interactions {
		var body io.Reader
		if in.Request.Body != "" {
			body = strings.NewReader(in.Request.Body)
		}
		req, err := http.NewRequestWithContext(ctx, in.Request.Method, strings.TrimRight(baseURL, "/")+in.Request.Path, body)
		if err != nil {
			return nil, fmt.Errorf("contract %s, %s: %w", c.Consumer, in.Name, err)
		}
		for k, v := range in.Request.Headers {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("contract %s, %s: %w", c.Consumer, in.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("contract %s, %s: read answer: %w", c.Consumer, in.Name, err)
		}
		if problems := check(in.Response, resp.StatusCode, data); len(problems) > 0 {
			out = append(out, Break{Consumer: c.Consumer, Interaction: in.Name, Request: in.Request.Method + " " + in.Request.Path, Problems: problems})
		}
	}
	return out, nil
}

// check compares an answer with what the consumer expects.
func check(want Response, status int, data []byte) []string {
	var problems []string
	if status != want.Status {
		problems = append(problems, fmt.Sprintf("status %d, want %d", status, want.Status))
	}
	if len(want.Fields) == 0 {
		return problems
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return append(problems, "the answer is not JSON")
	}
	for _, path := range sortedKeys(want.Fields) {
		problems = append(problems, field(doc, path, want.Fields[path])...)
	}
	return problems
}

// field checks the value(s) at path against typ.
func field(doc any, path, typ string) []string {
	type at struct {
		v     any
		where string
	}
	cur := []at{{doc, ""}}
	for _, part := range strings.Split(path, ".") {
		each := strings.HasSuffix(part, "[]")
		name := strings.TrimSuffix(part, "[]")
		var next []at
		for _, c := range cur {
			where := strings.TrimPrefix(c.where+"."+name, ".")
			obj, ok := c.v.(map[string]any)
			if !ok {
				return []string{fmt.Sprintf("%s is %s, not an object", strings.TrimPrefix(c.where, "."), typeOf(c.v))}
			}
			v, ok := obj[name]
			if !ok {
				return []string{where + " is missing"}
			}
			if !each {
				next = append(next, at{v, where})
				continue
			}
			arr, ok := v.([]any)
			if !ok {
				return []string{fmt.Sprintf("%s is %s, not an array", where, typeOf(v))}
			}
			for i, e := range arr {
				next = append(next, at{e, fmt.Sprintf("%s[%d]", where, i)})
			}
		}
		cur = next
	}
	var problems []string
	for _, c := range cur {
		if got := typeOf(c.v); got != typ && (typ != "number" || got != "integer") {
			problems = append(problems, fmt.Sprintf("%s is %s, want %s", c.where, got, typ))
			break // one element says it; the others would repeat it
		}
	}
	return problems
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
