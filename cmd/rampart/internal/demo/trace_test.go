package demo

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// startCollector runs the OpenTelemetry Collector that `make tools` builds
// (tools/otelcol: an OTLP/HTTP receiver and the file exporter) on a free
// loopback port, writing every span it receives to a file as OTLP JSON. It
// returns the receiver's URL and the file. Without the binary the test fails
// when RAMPART_REQUIRE_OTELCOL=1 (CI) and is skipped otherwise.
func startCollector(t *testing.T) (endpoint, spans string) {
	t.Helper()
	bin := os.Getenv("RAMPART_OTELCOL")
	if bin == "" {
		bin = filepath.Join(os.Getenv("RAMPART_TOOLS"), "otelcol")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("RAMPART_REQUIRE_OTELCOL") == "1" {
			t.Fatalf("RAMPART_REQUIRE_OTELCOL=1 but no collector: %v (make tools)", err)
		}
		t.Skipf("no collector binary (%v); make tools, and set RAMPART_REQUIRE_OTELCOL=1 to make this a failure", err)
	}
	dir := t.TempDir()
	spans = filepath.Join(dir, "spans.json")
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  file:
    path: %s
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
`, addr, spans)
	cfgFile := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, bin, []string{"--config=file:" + cfgFile}, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return "http://" + addr, spans
}

// freeAddr picks a free loopback address; the collector binds it a moment
// later.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// span is what the test reads of one span in the collector's file.
type span struct {
	TraceID, ID, Parent, Name, Service string
	Attrs                              map[string]string
}

// readSpans parses the file exporter's output: one OTLP JSON
// ExportTraceServiceRequest per line.
func readSpans(file string) (map[string]span, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type kv struct {
		Key   string `json:"key"`
		Value struct {
			String string `json:"stringValue"`
		} `json:"value"`
	}
	attrs := func(kvs []kv) map[string]string {
		m := map[string]string{}
		for _, a := range kvs {
			m[a.Key] = a.Value.String
		}
		return m
	}
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []kv `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []struct {
					TraceID    string `json:"traceId"`
					SpanID     string `json:"spanId"`
					ParentID   string `json:"parentSpanId"`
					Name       string `json:"name"`
					Attributes []kv   `json:"attributes"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	all := map[string]span{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			continue // a line still being written
		}
		for _, rs := range req.ResourceSpans {
			service := attrs(rs.Resource.Attributes)["service.name"]
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					all[s.SpanID] = span{TraceID: s.TraceID, ID: s.SpanID, Parent: s.ParentID, Name: s.Name,
						Service: service, Attrs: attrs(s.Attributes)}
				}
			}
		}
	}
	return all, sc.Err()
}

// ancestry is the names of s and its ancestors, s first, up to the root or
// the first parent not (yet) received.
func ancestry(all map[string]span, s span) []string {
	names := []string{s.Name}
	for s.Parent != "" {
		p, ok := all[s.Parent]
		if !ok {
			return append(names, "(missing parent "+s.Parent+")")
		}
		names, s = append(names, p.Name), p
	}
	return names
}

// One release exported to a real OpenTelemetry Collector is one trace: the
// registry webhook's span is its root; the scan, the promotion, each canary
// step, the anomaly the watcher finds in the canary, the rollback and the
// page it causes all descend from it through each service's consume and
// publish spans.
func TestReleaseIsOneTrace(t *testing.T) {
	endpoint, file := startCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: spans reach the collector while the test waits

	e := startEnv(t, time.Hour, 200)
	a := rollBack(t, e, Fail5xx)

	const root = "POST /hooks/registry"
	// The road to the canary: the image verdict's delivery to the deployer,
	// which deploys to staging; the scanner's checks there; the stage
	// verdict's delivery, which promotes.
	staged := []string{"consume scan", "publish scan", "consume stage", "publish stage", "consume scan", "publish scan", "consume artifact", "publish artifact", root}
	// Each event of the release, by the id its publish span records, and
	// the chain of spans that must lead from it to the webhook.
	want := map[string][]string{
		"promote:" + a.RolloutID:     append([]string{"publish promote"}, staged...),
		"step:" + a.RolloutID + ":0": append([]string{"publish canarystep"}, staged...),
		"step:" + a.RolloutID + ":1": append([]string{"publish canarystep"}, staged...),
		"rollback:" + a.RolloutID:    append([]string{"publish rollback"}, staged...),
	}
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		all, err := readSpans(file)
		if err != nil {
			return err
		}
		var traceID string
		byEvent := map[string]span{}
		var anomaly, page *span
		for _, s := range all {
			if id := s.Attrs["cloudevents.event_id"]; id != "" && strings.HasPrefix(s.Name, "publish ") {
				byEvent[id] = s
			}
		}
		var errs []error
		for id, chain := range want {
			s, ok := byEvent[id]
			if !ok {
				errs = append(errs, fmt.Errorf("no publish span for %s", id))
				continue
			}
			if got := ancestry(all, s); strings.Join(got, " <- ") != strings.Join(chain, " <- ") {
				errs = append(errs, fmt.Errorf("%s: spans %s, want %s", id, strings.Join(got, " <- "), strings.Join(chain, " <- ")))
			}
			if traceID == "" {
				traceID = s.TraceID
			} else if s.TraceID != traceID {
				errs = append(errs, fmt.Errorf("%s is in trace %s, the release in %s", id, s.TraceID, traceID))
			}
		}
		for _, s := range all {
			if s.TraceID != traceID {
				continue
			}
			switch s.Name {
			case "publish anomaly":
				anomaly = &s
			case "publish page":
				page = &s
			}
			if s.Service == "" {
				errs = append(errs, fmt.Errorf("span %s has no service.name", s.Name))
			}
		}
		// The watcher finds the anomaly in the step it was measuring; the
		// notifier pages on the deployer's rollback.
		if anomaly == nil {
			errs = append(errs, errors.New("no anomaly span in the release's trace"))
		} else if got := ancestry(all, *anomaly); len(got) < 2 || got[1] != "publish canarystep" || got[len(got)-1] != root {
			errs = append(errs, fmt.Errorf("anomaly: spans %s", strings.Join(got, " <- ")))
		}
		if page == nil {
			errs = append(errs, errors.New("no page span in the release's trace"))
		} else if got := ancestry(all, *page); len(got) < 3 || got[1] != "consume rollback" || got[2] != "publish rollback" || got[len(got)-1] != root {
			errs = append(errs, fmt.Errorf("page: spans %s", strings.Join(got, " <- ")))
		}
		return errors.Join(errs...)
	})
}
