// Package admin is the deployer's operator API: list and inspect rollouts,
// and pause, resume, abort or promote one.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/rampartci/rampart/services/deployer/internal/rollout"
)

// Operator is what the API acts on.
type Operator interface {
	Store() *rollout.Store
	Pause(ctx context.Context, id, reason string) (*rollout.Rollout, error)
	Resume(ctx context.Context, id string) (*rollout.Rollout, error)
	Promote(ctx context.Context, id string) (*rollout.Rollout, error)
	Abort(ctx context.Context, id, reason string) (*rollout.Rollout, error)
}

var _ Operator = (*rollout.Manager)(nil)

// maxBody bounds an action's request body.
const maxBody = 64 << 10

// Routes registers the API under /deployer/. When token is not empty every
// request must carry it as a bearer token.
func Routes(mux *http.ServeMux, op Operator, token string) {
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if token != "" {
				got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
					w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-deployer"`)
					writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
					return
				}
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /deployer/rollouts", auth(func(w http.ResponseWriter, r *http.Request) {
		list, err := op.Store().List(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if list == nil {
			list = []*rollout.Rollout{}
		}
		writeJSON(w, http.StatusOK, list)
	}))
	mux.HandleFunc("GET /deployer/rollouts/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		ro, err := op.Store().Rollout(r.Context(), r.PathValue("id"))
		if err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}))
	mux.HandleFunc("POST /deployer/rollouts/{id}/{action}", auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					writeError(w, http.StatusRequestEntityTooLarge, "body over 64 KiB")
					return
				}
				writeError(w, http.StatusBadRequest, "body: "+err.Error()+` (want {"reason": "..."})`)
				return
			}
		}
		id, ctx := r.PathValue("id"), r.Context()
		var ro *rollout.Rollout
		var err error
		switch r.PathValue("action") {
		case "pause":
			ro, err = op.Pause(ctx, id, body.Reason)
		case "resume":
			ro, err = op.Resume(ctx, id)
		case "promote":
			ro, err = op.Promote(ctx, id)
		case "abort":
			ro, err = op.Abort(ctx, id, body.Reason)
		default:
			writeError(w, http.StatusBadRequest, "action "+r.PathValue("action")+" is not pause, resume, promote or abort")
			return
		}
		if err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}))
}

func writeStoreError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such rollout")
	case errors.Is(err, rollout.ErrFinished):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
