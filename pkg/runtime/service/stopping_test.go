package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

// streamer serves a response that lasts until the host stops, as a
// server-sent event stream does.
type streamer struct{ component }

func (s *streamer) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "open")
		http.NewResponseController(w).Flush()
		select {
		case <-s.deps.Stopping:
		case <-r.Context().Done():
		}
	})
}

// A graceful shutdown is not held up by a long-lived response: Stopping
// tells its handler to end.
func TestShutdownEndsStreams(t *testing.T) {
	ns := natstest.Server(t, "")
	opts := service.DefaultOptions("test")
	opts.NATSURL, opts.HTTPAddr = ns.ClientURL(), "127.0.0.1:0"
	opts.NATS = natstest.Identity(t, ns, natsauth.Admin)
	s := &streamer{component{name: "streamer"}}
	h, err := service.Start(t.Context(), opts, slog.New(slog.DiscardHandler), s)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + h.HTTPAddr() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %s with an open stream", took)
	}
}
