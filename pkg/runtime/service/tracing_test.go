package service_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// otlpSink is an OTLP/HTTP endpoint that keeps the bodies posted to
// /v1/traces (protobuf: the span and service names are there as text).
type otlpSink struct {
	mu     sync.Mutex
	bodies []string
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (s *otlpSink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.bodies, "")
}

func startHost(t *testing.T, name string) *service.Host {
	t.Helper()
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions(name)
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, ns, natsauth.Admin)
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), &component{name: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the host exports spans over
// OTLP/HTTP under its name as service.name, and its shutdown flushes the
// spans still buffered (the batcher would wait 5s otherwise).
func TestTracesExportedAndFlushedOnShutdown(t *testing.T) {
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "")
	h := startHost(t, "rampart-trace-test")

	_, span := otel.Tracer("test").Start(t.Context(), "release-under-test")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := sink.all()
	if !strings.Contains(got, "release-under-test") || !strings.Contains(got, "rampart-trace-test") {
		t.Fatalf("the collector received %d bytes without the span or the service name", len(got))
	}
	// Shut down, the host has put the no-op provider back.
	if _, s := otel.Tracer("test").Start(t.Context(), "after"); s.SpanContext().IsValid() {
		t.Fatal("spans are still recorded after the host stopped")
	}
}

// OTEL_SERVICE_NAME overrides the host's name.
func TestTraceServiceNameFromEnv(t *testing.T) {
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")
	t.Setenv("OTEL_SERVICE_NAME", "shop-pipeline")
	h := startHost(t, "rampart-trace-test")
	_, span := otel.Tracer("test").Start(t.Context(), "named")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sink.all(); !strings.Contains(got, "shop-pipeline") || strings.Contains(got, "rampart-trace-test") {
		t.Fatalf("service name not taken from OTEL_SERVICE_NAME: %q", got)
	}
}

// Without an endpoint nothing is installed: spans are not recorded.
func TestNoTracingWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	h := startHost(t, "rampart-trace-test")
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	if _, s := otel.Tracer("test").Start(t.Context(), "unexported"); s.SpanContext().IsValid() {
		t.Fatal("a span is recorded with no endpoint set")
	}
}
