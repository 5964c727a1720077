package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// PathFaults is where chaos drills inject faults into an application's
// canary at its router:
//
//	GET    /deployer/faults/{app}    FaultState
//	PUT    /deployer/faults/{app}    Fault → FaultState
//	DELETE /deployer/faults/{app}    FaultState (none in force)
//
// Only the chaos token may call them (401 without it, 403 for the viewer's
// or the operator's); with no chaos token configured, every request is
// refused. A fault touches only canary requests, lasts at most
// MaxFaultFor and ends by itself. 404: no such application; 409: its
// router cannot inject faults (Gateway API: see decision 0023).
const PathFaults = "/deployer/faults"

// MaxFaultFor is the longest a fault may last.
const MaxFaultFor = 15 * time.Minute

// Fault is what a drill asks the router to do to the canary's requests.
type Fault struct {
	// ErrorRatio of the canary's requests are answered 500 by the router.
	ErrorRatio float64 `json:"errorRatio,omitempty"`
	// Latency is added to every canary request, e.g. "300ms".
	Latency string `json:"latency,omitempty"`
	// For is how long the fault lasts, e.g. "2m"; at most MaxFaultFor.
	For string `json:"for"`
}

// FaultState is the fault in force at an application's router.
type FaultState struct {
	App        string    `json:"app"`
	Active     bool      `json:"active"`
	ErrorRatio float64   `json:"errorRatio,omitempty"`
	Latency    string    `json:"latency,omitempty"`
	Until      time.Time `json:"until,omitzero"`
}

// Fault returns the fault in force at app's router.
func (c *Client) Fault(ctx context.Context, app string) (FaultState, error) {
	var s FaultState
	err := c.do(ctx, http.MethodGet, PathFaults+"/"+url.PathEscape(app), nil, &s)
	return s, err
}

// InjectFault starts f at app's router, replacing any fault in force.
func (c *Client) InjectFault(ctx context.Context, app string, f Fault) (FaultState, error) {
	var s FaultState
	body, err := json.Marshal(f)
	if err != nil {
		return s, err
	}
	err = c.do(ctx, http.MethodPut, PathFaults+"/"+url.PathEscape(app), body, &s)
	return s, err
}

// ClearFault ends the fault in force at app's router, if any.
func (c *Client) ClearFault(ctx context.Context, app string) (FaultState, error) {
	var s FaultState
	err := c.do(ctx, http.MethodDelete, PathFaults+"/"+url.PathEscape(app), nil, &s)
	return s, err
}
