package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// PathComponents is where the host serves its components' state and kill
// route, when Options.ChaosToken opens them:
//
//	GET  /host/components/{name}        ComponentState
//	POST /host/components/{name}/kill   {"downtime": "5s"} → 202 ComponentState
const PathComponents = "/host/components"

// KillRequest is the kill route's body.
type KillRequest struct {
	// Downtime is how long the component stays down (a Go duration, at
	// most MaxDowntime).
	Downtime string `json:"downtime"`
}

// maxKillBody bounds a kill request.
const maxKillBody = 4 << 10

// killRoutes serves the components' state and the kill route to the
// bearer of token only: the chaos drills' token, which nothing else
// accepts on this route.
func (h *Host) killRoutes(mux *http.ServeMux, token string) {
	auth := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := (webhook.Auth{Bearer: token}).Verify(r.Header); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-host"`)
				writeError(w, http.StatusUnauthorized, err)
				return
			}
			next(w, r)
		}
	}
	mux.HandleFunc("GET "+PathComponents+"/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.Component(r.PathValue("name"))
		if err != nil {
			writeError(w, killStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	}))
	mux.HandleFunc("POST "+PathComponents+"/{name}/kill", auth(func(w http.ResponseWriter, r *http.Request) {
		if mt := webhook.MediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q, want application/json", mt))
			return
		}
		var req KillRequest
		raw, err := webhook.ReadBody(r, maxKillBody)
		if err == nil {
			err = webhook.Decode(raw, &req, true)
		}
		if err != nil {
			writeError(w, webhook.Status(err), fmt.Errorf(`%w (want {"downtime": "5s"})`, err))
			return
		}
		d, err := time.ParseDuration(req.Downtime)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w: %q is not a duration", ErrBadDowntime, req.Downtime))
			return
		}
		s, err := h.Kill(r.Context(), r.PathValue("name"), d)
		if err != nil {
			writeError(w, killStatus(err), err)
			return
		}
		writeJSON(w, http.StatusAccepted, s)
	}))
}

func killStatus(err error) int {
	switch {
	case errors.Is(err, ErrNoComponent):
		return http.StatusNotFound
	case errors.Is(err, ErrNotRestartable), errors.Is(err, ErrNotRunning):
		return http.StatusConflict
	case errors.Is(err, ErrBadDowntime):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": "..."}.
func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
