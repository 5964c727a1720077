// Package demo is `rampart demo`: the whole pipeline on the embedded default,
// with a small demo application whose versions behave as their images say.
package demo

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// Image labels that set a demo version's behaviour.
const (
	LabelVersion   = "org.rampart.demo.version"
	LabelFailRatio = "org.rampart.demo.fail-ratio"
	// LabelPriceField names the field that carries an item's price in
	// /api/items (default "price", which the frontend's contract reads).
	LabelPriceField = "org.rampart.demo.price-field"
)

// Spec is the demo application's OpenAPI document, served on /openapi.json
// by every version: the items API promises a price for each item.
const Spec = `{"openapi": "3.0.3", "info": {"title": "shop", "version": "1.0.0"},
 "paths": {"/api/items": {"get": {
  "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}],
  "responses": {"200": {"description": "the items", "content": {"application/json": {"schema": {"type": "object",
   "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["name", "price"],
    "properties": {"name": {"type": "string"}, "price": {"type": "number"}}}}}}}}}}}}}}`

// MemoryMetric is the gauge each version reports its memory in; the demo
// policy's memory rule reads it.
const MemoryMetric = "demo_app_memory_bytes"

// baseMemory is what a version reports before any injected growth.
const baseMemory = 32 << 20

// version is one running version of the demo application.
type version struct {
	name string
	// priceField is what /api/items calls an item's price.
	priceField string
	// failEvery makes every n-th request fail with 500 (0: never). A
	// counter, not a random draw, so a given share fails exactly.
	failEvery atomic.Int64
	requests  atomic.Int64
	mu        sync.Mutex
	ballast   [][]byte // real allocations standing for a memory leak
}

func newVersion(name string, failRatio float64, priceField string) *version {
	if priceField == "" {
		priceField = "price"
	}
	v := &version{name: name, priceField: priceField}
	v.setFailRatio(failRatio)
	return v
}

func (v *version) setFailRatio(r float64) {
	if r <= 0 {
		v.failEvery.Store(0)
		return
	}
	v.failEvery.Store(int64(math.Max(1, math.Round(1/r))))
}

func (v *version) grow(mb int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	chunk := make([]byte, mb<<20)
	for i := 0; i < len(chunk); i += 4096 {
		chunk[i] = 1 // touch every page so the memory is really used
	}
	v.ballast = append(v.ballast, chunk)
}

func (v *version) memory() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := baseMemory
	for _, b := range v.ballast {
		n += len(b)
	}
	return n
}

func (v *version) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case "/openapi.json":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, Spec)
		return
	case "/api/items":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"items": [{"name": "tea", %q: 3.5}, {"name": "cup", %q: 4}]}`, v.priceField, v.priceField)
		return
	case "/metrics":
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP %s Memory the demo version holds.\n# TYPE %s gauge\n%s %d\n", MemoryMetric, MemoryMetric, MemoryMetric, v.memory())
		return
	case "/admin/fail":
		ratio, err := strconv.ParseFloat(r.URL.Query().Get("ratio"), 64)
		if err != nil || ratio < 0 || ratio > 1 {
			http.Error(w, "ratio must be a number within 0..1", http.StatusBadRequest)
			return
		}
		v.setFailRatio(ratio)
		return
	case "/admin/grow":
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		if err != nil || mb < 1 || mb > 1024 {
			http.Error(w, "mb must be within 1..1024", http.StatusBadRequest)
			return
		}
		v.grow(mb)
		return
	}
	n := v.requests.Add(1)
	if every := v.failEvery.Load(); every > 0 && n%every == 0 {
		http.Error(w, v.name+": simulated failure", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "hello from %s\n", v.name)
}

// Slot is a fixed address where one version at a time serves. Deploying
// swaps the version behind the listener without closing it, so a slot never
// refuses a connection while it changes.
type Slot struct {
	ln      net.Listener
	srv     *http.Server
	current atomic.Pointer[version]
}

// NewSlot listens on a free loopback port.
func NewSlot() (*Slot, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Slot{ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := s.current.Load()
		if v == nil {
			http.Error(w, "slot is empty", http.StatusServiceUnavailable)
			return
		}
		v.ServeHTTP(w, r)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the slot's base URL.
func (s *Slot) URL() string { return "http://" + s.ln.Addr().String() }

// Run makes v serve in the slot.
func (s *Slot) Run(v *version) { s.current.Store(v) }

// Version is the name of the version serving, or "".
func (s *Slot) Version() string {
	if v := s.current.Load(); v != nil {
		return v.name
	}
	return ""
}

// Close stops the slot.
func (s *Slot) Close() error { return s.srv.Close() }
