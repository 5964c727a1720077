// Package admin serves the deployer's operator API (package adminapi has
// its wire types and client): list and inspect rollouts, and pause, resume,
// abort or promote one.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Operator is what the API acts on.
type Operator interface {
	List(ctx context.Context) ([]adminapi.Rollout, error)
	Rollout(ctx context.Context, id string) (adminapi.Rollout, error)
	Act(ctx context.Context, id string, action adminapi.Action, reason string, by adminapi.Actor) (adminapi.Rollout, error)
}

// maxBody bounds an action's request body.
const maxBody = 64 << 10

// Tokens are the operator API's bearer tokens, one per role. A request
// carrying neither is refused (401); with none configured, every request is.
type Tokens struct {
	// Viewer may list and inspect rollouts.
	Viewer string
	// Operator may also pause, resume, promote and abort them.
	Operator string
	// Chaos may only inject faults into canaries (FaultRoutes), for
	// chaos drills; it reads and acts on no rollout.
	Chaos string
}

// role is what a request's token allows.
type role int

const (
	viewer role = iota + 1
	operator
)

// roleOf is the role r's bearer token grants, or 0.
func (t Tokens) roleOf(r *http.Request) role {
	switch {
	case t.Operator != "" && (webhook.Auth{Bearer: t.Operator}).Verify(r.Header) == nil:
		return operator
	case t.Viewer != "" && (webhook.Auth{Bearer: t.Viewer}).Verify(r.Header) == nil:
		return viewer
	}
	return 0
}

// Routes registers the API under adminapi.PathRollouts. Reads need the
// viewer or the operator token; actions need the operator token (403 for
// the viewer's) and a JSON body (415 otherwise, checked first: a browser's
// cross-origin form or text/plain POST never reaches an action).
func Routes(mux *http.ServeMux, op Operator, tokens Tokens) {
	auth := func(need role, h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				if mt := webhook.MediaType(r.Header.Get("Content-Type")); mt != "application/json" {
					writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q, want application/json", mt))
					return
				}
			}
			switch got := tokens.roleOf(r); {
			case got == 0:
				w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-deployer"`)
				writeError(w, http.StatusUnauthorized, adminapi.ErrUnauthorized.Error())
				return
			case got < need:
				writeError(w, http.StatusForbidden, adminapi.ErrForbidden.Error())
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+adminapi.PathRollouts, auth(viewer, func(w http.ResponseWriter, r *http.Request) {
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
	mux.HandleFunc("GET "+adminapi.PathRollouts+"/{id}", auth(viewer, func(w http.ResponseWriter, r *http.Request) {
		ro, err := op.Rollout(r.Context(), r.PathValue("id"))
		if err != nil {
			writeOperatorError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ro)
	}))
	actor := adminapi.OperatorActor(tokens.Operator, "api") // only the operator token reaches an action
	mux.HandleFunc("POST "+adminapi.PathRollouts+"/{id}/{action}", auth(operator, func(w http.ResponseWriter, r *http.Request) {
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
		ro, err := op.Act(r.Context(), r.PathValue("id"), action, body.Reason, actor)
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
