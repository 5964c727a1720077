// Package admin serves the deployer's operator API (package adminapi has
// its wire types and client): list and inspect rollouts, and pause, resume,
// abort or promote one.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Operator is what the API acts on.
type Operator interface {
	List(ctx context.Context) ([]adminapi.Rollout, error)
	Rollout(ctx context.Context, id string) (adminapi.Rollout, error)
	Act(ctx context.Context, id string, action adminapi.Action, reason string) (adminapi.Rollout, error)
}

// maxBody bounds an action's request body.
const maxBody = 64 << 10

// Routes registers the API under adminapi.PathRollouts. When token is not
// empty every request must carry it as a bearer token.
func Routes(mux *http.ServeMux, op Operator, token string) {
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		if token == "" {
			return h
		}
		want := webhook.Auth{Bearer: token}
		return func(w http.ResponseWriter, r *http.Request) {
			if err := want.Verify(r.Header); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-deployer"`)
				writeError(w, http.StatusUnauthorized, adminapi.ErrUnauthorized.Error())
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+adminapi.PathRollouts, auth(func(w http.ResponseWriter, r *http.Request) {
		list, err := op.List(r.Context())
		if err != nil {
			writeOperatorError(w, err)
			return
		}
		if list == nil {
			list = []adminapi.Rollout{}
		}
		writeJSON(w, http.StatusOK, list)
	}))
	mux.HandleFunc("GET "+adminapi.PathRollouts+"/{id}", auth(func(w http.ResponseWriter, r *http.Request) {
		ro, err := op.Rollout(r.Context(), r.PathValue("id"))
		if err != nil {
			writeOperatorError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}))
	mux.HandleFunc("POST "+adminapi.PathRollouts+"/{id}/{action}", auth(func(w http.ResponseWriter, r *http.Request) {
		action := adminapi.Action(r.PathValue("action"))
		switch action {
		case adminapi.ActionPause, adminapi.ActionResume, adminapi.ActionPromote, adminapi.ActionAbort:
		default:
			writeError(w, http.StatusBadRequest, "action "+string(action)+" is not pause, resume, promote or abort")
			return
		}
		var body adminapi.ActionRequest
		raw, err := webhook.ReadBody(r, maxBody)
		if err == nil && len(raw) > 0 {
			err = webhook.Decode(raw, &body, true)
		}
		if err != nil {
			msg := err.Error()
			if errors.Is(err, webhook.ErrMalformed) {
				msg += ` (want {"reason": "..."})`
			}
			writeError(w, webhook.Status(err), msg)
			return
		}
		ro, err := op.Act(r.Context(), r.PathValue("id"), action, body.Reason)
		if err != nil {
			writeOperatorError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}))
}

func writeOperatorError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, adminapi.ErrNotFound):
		writeError(w, http.StatusNotFound, adminapi.ErrNotFound.Error())
	case errors.Is(err, adminapi.ErrFinished):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, adminapi.Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
