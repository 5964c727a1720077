package commitscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/sarif"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/verdict"
)

// SARIFPath is where the SARIF hook is mounted.
const SARIFPath = "/hooks/sarif"

// The app mounts a commit handler's routes when it is a service.Router.
var _ service.Router = (*Service)(nil)

// Routes mounts the SARIF hook on mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+SARIFPath, s.serveSARIF)
}

// SARIFAnswer is the JSON body of a 202 from the SARIF hook.
type SARIFAnswer struct {
	ID       string       `json:"id"` // the verdict event's id
	Outcome  gate.Outcome `json:"outcome"`
	Blocking int          `json:"blocking"` // how many findings block
	// Findings are the blocking findings, most severe first.
	Findings []finding.Finding `json:"findings,omitempty"`
	// Duplicate: the same upload was published before; the bus kept one.
	Duplicate bool `json:"duplicate,omitempty"`
}

// serveSARIF takes a SARIF 2.1.0 log as the body of
//
//	POST /hooks/sarif?commit=<sha>&repository=<repo>[&app=<app>][&pull_request=<n>]
//	Authorization: Bearer <token>
//
// and publishes the source verdict on its findings. Answers: 202 with a
// SARIFAnswer; 401 for a missing or wrong token; 400 for a malformed log or
// target (with the reason); 413 over sarif.MaxSize; 503 when no token is
// configured or publishing failed. Nothing is published from a failed
// request.
func (s *Service) serveSARIF(w http.ResponseWriter, r *http.Request) {
	if s.sarifToken == "" {
		http.Error(w, "SARIF hook is not configured", http.StatusServiceUnavailable)
		return
	}
	if err := (webhook.Auth{Bearer: s.sarifToken}).Verify(r.Header); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := webhook.ReadBody(r, sarif.MaxSize)
	switch {
	case errors.Is(err, webhook.ErrTooLarge):
		http.Error(w, fmt.Sprintf("body larger than %d bytes", sarif.MaxSize), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	u := verdict.Upload{Repository: q.Get("repository"), SHA: q.Get("commit"), App: q.Get("app"), SARIF: body}
	if u.App != "" {
		if err := events.CheckName("app", u.App); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if pr := q.Get("pull_request"); pr != "" {
		if u.PullRequest, err = strconv.Atoi(pr); err != nil || u.PullRequest < 1 {
			http.Error(w, "pull_request is not a positive number", http.StatusBadRequest)
			return
		}
	}
	ev, dec, err := verdict.SARIF(u, verdict.Options{Key: s.opts.Key, Gate: s.opts.Gate, Source: s.opts.Source,
		Environment: s.opts.Environment, TopFindings: s.opts.TopFindings, Now: s.opts.Now()})
	switch {
	case errors.Is(err, verdict.ErrUpload):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		s.logger.Error("SARIF verdict", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ack, err := s.opts.Publisher.Publish(r.Context(), ev)
	switch {
	case errors.Is(err, bus.ErrTooLarge):
		// Retrying cannot help: say so, with the limit.
		s.logger.Warn("SARIF verdict too large", "sha", u.SHA, "err", err)
		http.Error(w, "the verdict is larger than the event bus accepts: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		s.logger.Error("publish SARIF verdict", "sha", u.SHA, "err", err)
		http.Error(w, "could not publish the verdict; retry", http.StatusServiceUnavailable)
		return
	}
	s.logger.Info("SARIF verdict", "repository", u.Repository, "sha", u.SHA, "outcome", dec.Outcome, "blocking", len(dec.Blocking))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(SARIFAnswer{ID: ev.ID(), Outcome: dec.Outcome, Blocking: len(dec.Blocking),
		Findings: dec.Blocking, Duplicate: ack != nil && ack.Duplicate})
}
