package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Faults is what the fault routes act on: the applications' routers.
type Faults interface {
	Fault(ctx context.Context, app string) (adminapi.FaultState, error)
	InjectFault(ctx context.Context, app string, f adminapi.Fault) (adminapi.FaultState, error)
	ClearFault(ctx context.Context, app string) (adminapi.FaultState, error)
}

// Errors a Faults implementation returns for the routes to map.
var (
	// ErrNoApp: no application of that name (404).
	ErrNoApp = errors.New("no such application")
	// ErrNoFaults: the application's router cannot inject faults (409).
	ErrNoFaults = errors.New("the application's router cannot inject faults")
	// ErrBadFault: the fault is out of bounds (400).
	ErrBadFault = errors.New("invalid fault")
)

// FaultRoutes registers the chaos drills' fault routes under
// adminapi.PathFaults. Only tokens.Chaos opens them: the operator's and
// the viewer's are refused (403), and so is everything when no chaos token
// is configured (401).
func FaultRoutes(mux *http.ServeMux, f Faults, tokens Tokens) {
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				if mt := webhook.MediaType(r.Header.Get("Content-Type")); mt != "application/json" {
					writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q, want application/json", mt))
					return
				}
			}
			if tokens.Chaos == "" || (webhook.Auth{Bearer: tokens.Chaos}).Verify(r.Header) != nil {
				if tokens.roleOf(r) != 0 {
					writeError(w, http.StatusForbidden, "faults need the chaos token; the operator's and the viewer's may not inject them")
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="rampart-deployer"`)
				writeError(w, http.StatusUnauthorized, adminapi.ErrUnauthorized.Error())
				return
			}
			h(w, r)
		}
	}
	path := adminapi.PathFaults + "/{app}"
	answer := func(w http.ResponseWriter, s adminapi.FaultState, err error) {
		switch {
		case errors.Is(err, ErrNoApp):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, ErrNoFaults):
			writeError(w, http.StatusConflict, err.Error())
		case errors.Is(err, ErrBadFault):
			writeError(w, http.StatusBadRequest, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusOK, s)
		}
	}
	mux.HandleFunc("GET "+path, auth(func(w http.ResponseWriter, r *http.Request) {
		s, err := f.Fault(r.Context(), r.PathValue("app"))
		answer(w, s, err)
	}))
	mux.HandleFunc("DELETE "+path, auth(func(w http.ResponseWriter, r *http.Request) {
		s, err := f.ClearFault(r.Context(), r.PathValue("app"))
		answer(w, s, err)
	}))
	mux.HandleFunc("PUT "+path, auth(func(w http.ResponseWriter, r *http.Request) {
		var body adminapi.Fault
		raw, err := webhook.ReadBody(r, maxBody)
		if err == nil {
			err = webhook.Decode(raw, &body, true)
		}
		if err != nil {
			msg := err.Error()
			if errors.Is(err, webhook.ErrMalformed) {
				msg += ` (want {"errorRatio": 0.2, "latency": "300ms", "for": "2m"})`
			}
			writeError(w, webhook.Status(err), msg)
			return
		}
		s, err := f.InjectFault(r.Context(), r.PathValue("app"), body)
		answer(w, s, err)
	}))
}
