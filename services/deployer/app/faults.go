package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampartci/rampart/services/deployer/adminapi"
	"github.com/rampartci/rampart/services/deployer/internal/admin"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

// faulter is a router that injects faults itself: the local one. A
// Gateway API route would take an HTTPRoute fault filter or a Chaos Mesh
// HTTPChaos instead (decision 0023), which this deployer does not write.
type faulter interface {
	InjectFault(local.Fault) error
	ClearFault()
	Fault() (local.Fault, bool)
}

var _ faulter = (*local.Router)(nil)

// errNotRunning: the deployer is stopped (a chaos drill killed it).
var errNotRunning = errors.New("the deployer is not running")

func (a *App) faulter(app string) (faulter, error) {
	r := a.run.Load()
	if r == nil {
		return nil, errNotRunning
	}
	rt, ok := r.routers[app]
	if !ok {
		return nil, fmt.Errorf("%w: %q", admin.ErrNoApp, app)
	}
	f, ok := rt.(faulter)
	if !ok {
		return nil, fmt.Errorf("%w: %s's router is not the local one", admin.ErrNoFaults, app)
	}
	return f, nil
}

// Fault implements admin.Faults.
func (a *App) Fault(_ context.Context, app string) (adminapi.FaultState, error) {
	f, err := a.faulter(app)
	if err != nil {
		return adminapi.FaultState{}, err
	}
	return faultState(app, f), nil
}

// InjectFault implements admin.Faults: it parses and bounds the request
// and starts the fault at app's router.
func (a *App) InjectFault(_ context.Context, app string, req adminapi.Fault) (adminapi.FaultState, error) {
	f, err := a.faulter(app)
	if err != nil {
		return adminapi.FaultState{}, err
	}
	lf := local.Fault{ErrorRatio: req.ErrorRatio}
	if req.Latency != "" {
		if lf.Latency, err = time.ParseDuration(req.Latency); err != nil {
			return adminapi.FaultState{}, fmt.Errorf("%w: latency: %v", admin.ErrBadFault, err)
		}
	}
	d, err := time.ParseDuration(req.For)
	if err != nil {
		return adminapi.FaultState{}, fmt.Errorf("%w: for: %v (want a duration up to %s)", admin.ErrBadFault, err, adminapi.MaxFaultFor)
	}
	if d > adminapi.MaxFaultFor {
		return adminapi.FaultState{}, fmt.Errorf("%w: for %s is longer than %s", admin.ErrBadFault, d, adminapi.MaxFaultFor)
	}
	lf.Until = time.Now().Add(d)
	if err := f.InjectFault(lf); err != nil {
		return adminapi.FaultState{}, fmt.Errorf("%w: %v", admin.ErrBadFault, err)
	}
	a.log.Warn("chaos drill fault injected", "app", app, "errorRatio", lf.ErrorRatio, "latency", lf.Latency, "for", d)
	return faultState(app, f), nil
}

// ClearFault implements admin.Faults.
func (a *App) ClearFault(_ context.Context, app string) (adminapi.FaultState, error) {
	f, err := a.faulter(app)
	if err != nil {
		return adminapi.FaultState{}, err
	}
	f.ClearFault()
	return faultState(app, f), nil
}

func faultState(app string, f faulter) adminapi.FaultState {
	s := adminapi.FaultState{App: app}
	if lf, ok := f.Fault(); ok {
		s.Active, s.ErrorRatio, s.Until = true, lf.ErrorRatio, lf.Until.UTC()
		if lf.Latency > 0 {
			s.Latency = lf.Latency.String()
		}
	}
	return s
}
