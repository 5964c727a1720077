package service

// A component's life inside the host: started at Start, stopped at
// Shutdown, and, for a component that says it can be (Restarter), killed
// and started again in between by a chaos drill (Host.Kill, the kill route
// in killroute.go; decision 0029).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Restarter is a component that can be stopped and started again in the
// same process, as a killed process is restarted: Host.Kill stops it and
// starts it again after a downtime. Its Start after a Stop begins afresh
// from its durable state, with new Deps (a fresh metrics registry, a new
// Stopping channel); its routes, registered once, answer for the start in
// force, and 503 while it is stopped.
type Restarter interface {
	Component
	// Restartable marks the component; it does nothing.
	Restartable()
}

// MaxDowntime bounds a kill's downtime.
const MaxDowntime = 5 * time.Minute

// Errors of Kill and ComponentState, which the kill route maps to statuses.
var (
	// ErrNoComponent: the host runs no component by that name (404).
	ErrNoComponent = errors.New("no such component")
	// ErrNotRestartable: the component cannot be started again in this
	// process (409).
	ErrNotRestartable = errors.New("component cannot be restarted in this process")
	// ErrNotRunning: the component is already down (409).
	ErrNotRunning = errors.New("component is not running")
	// ErrBadDowntime: the downtime is not a duration above 0 and at most
	// MaxDowntime (400).
	ErrBadDowntime = errors.New("bad downtime")
)

// ComponentState is a component's life in the host, as the kill route
// reports it.
type ComponentState struct {
	Name        string `json:"name"`
	Running     bool   `json:"running"`
	Restartable bool   `json:"restartable"`
	// StartedAt is when the start in force (or the last one) began.
	StartedAt time.Time `json:"startedAt"`
	// KilledAt is the last kill; RestartAt when the component starts
	// again, while it is down.
	KilledAt  *time.Time `json:"killedAt,omitempty"`
	RestartAt *time.Time `json:"restartAt,omitempty"`
	// Restarts counts the starts after a kill.
	Restarts int `json:"restarts"`
	// Error is why the last start after a kill failed; the component then
	// stays down.
	Error string `json:"error,omitempty"`
}

// member is one component as the host runs it.
type member struct {
	comp Component
	bus  *bus.Bus
	log  *slog.Logger
	reg  atomic.Pointer[prometheus.Registry] // the start in force's; nil while down

	mu       sync.Mutex
	running  bool
	stopping chan struct{} // closed when this start's long responses must end
	closed   bool          // stopping is closed
	state    ComponentState
}

// start starts the component with fresh dependencies: a registry of its
// own, so that a start after a kill registers its metrics anew, and its own
// Stopping channel. m.mu is held.
func (m *member) start(ctx context.Context) error {
	reg := prometheus.NewRegistry()
	m.stopping, m.closed = make(chan struct{}), false
	deps := Deps{Bus: m.bus, Registerer: reg, Logger: m.log, Stopping: m.stopping}
	if err := m.comp.Start(ctx, deps); err != nil {
		m.endStreams()
		return err
	}
	m.reg.Store(reg)
	m.running = true
	m.state.StartedAt, m.state.Error = time.Now().UTC(), ""
	return nil
}

// stop stops the component if it runs. m.mu is held.
func (m *member) stop(ctx context.Context) error {
	if !m.running {
		return nil
	}
	m.running = false
	m.endStreams()
	err := m.comp.Stop(ctx)
	m.reg.Store(nil)
	return err
}

// endStreams closes this start's Stopping channel once. m.mu is held.
func (m *member) endStreams() {
	if m.stopping != nil && !m.closed {
		close(m.stopping)
		m.closed = true
	}
}

// ready is the component's readiness: down after a kill, else its own.
func (m *member) ready(ctx context.Context) error {
	m.mu.Lock()
	running, st := m.running, m.state
	m.mu.Unlock()
	if !running {
		if st.RestartAt != nil {
			return fmt.Errorf("killed, restarting at %s", st.RestartAt.Format(time.RFC3339))
		}
		if st.Error != "" {
			return fmt.Errorf("down: %s", st.Error)
		}
		return errors.New("not running")
	}
	if rc, ok := m.comp.(ReadyChecker); ok {
		return rc.Ready(ctx)
	}
	return nil
}

func (m *member) snapshot() ComponentState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	s.Name, s.Running = m.comp.Name(), m.running
	_, s.Restartable = m.comp.(Restarter)
	return s
}

// gatherer gathers the metrics of each component's start in force:
// registries come and go with kills, the host's /metrics stays one
// endpoint.
type gatherer []*member

func (g gatherer) Gather() ([]*dto.MetricFamily, error) {
	var gs prometheus.Gatherers
	for _, m := range g {
		if reg := m.reg.Load(); reg != nil {
			gs = append(gs, reg)
		}
	}
	return gs.Gather()
}

// member is the component named name.
func (h *Host) member(name string) (*member, error) {
	for _, m := range h.members {
		if m.comp.Name() == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoComponent, name)
}

// Component is the state of the component named name.
func (h *Host) Component(name string) (ComponentState, error) {
	m, err := h.member(name)
	if err != nil {
		return ComponentState{}, err
	}
	return m.snapshot(), nil
}

// Kill stops the component named name at once, as if its process had died
// (its consumers drained, its routes answering 503, its metrics gone), and
// starts it again after downtime, as a supervisor restarts a killed
// process. It returns once the component is stopped. Only a Restarter can
// be killed; one that is already down cannot be killed again.
func (h *Host) Kill(ctx context.Context, name string, downtime time.Duration) (ComponentState, error) {
	if downtime <= 0 || downtime > MaxDowntime {
		return ComponentState{}, fmt.Errorf("%w: %s: want more than 0, at most %s", ErrBadDowntime, downtime, MaxDowntime)
	}
	m, err := h.member(name)
	if err != nil {
		return ComponentState{}, err
	}
	if _, ok := m.comp.(Restarter); !ok {
		return ComponentState{}, fmt.Errorf("%w: %s", ErrNotRestartable, name)
	}
	if h.life.Err() != nil {
		return ComponentState{}, fmt.Errorf("%w: %s: the host is shutting down", ErrNotRunning, name)
	}
	m.mu.Lock()
	if !m.running {
		m.mu.Unlock()
		return ComponentState{}, fmt.Errorf("%w: %s", ErrNotRunning, name)
	}
	// A caller that goes away does not cut the stop short.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.ShutdownTimeout)
	err = m.stop(sctx)
	cancel()
	now := time.Now().UTC()
	at := now.Add(downtime)
	m.state.KilledAt, m.state.RestartAt = &now, &at
	m.mu.Unlock()
	if err != nil {
		h.log.Warn("killed component stopped with an error", "component", name, "err", err)
	}
	h.log.Warn("component killed by a chaos drill", "component", name, "downtime", downtime)
	h.lifeMu.Lock()
	if h.life.Err() == nil { // else the host is shutting down: it stays down
		h.restarts.Go(func() { h.restart(m, downtime) })
	}
	h.lifeMu.Unlock()
	return m.snapshot(), nil
}

// restart starts m again after downtime, unless the host shuts down first.
func (h *Host) restart(m *member, downtime time.Duration) {
	t := time.NewTimer(downtime)
	defer t.Stop()
	select {
	case <-h.life.Done():
		return
	case <-t.C:
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.life.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(h.life, h.opts.ShutdownTimeout)
	defer cancel()
	m.state.RestartAt = nil
	if err := m.start(ctx); err != nil {
		m.state.Error = err.Error()
		h.log.Error("killed component did not start again", "component", m.comp.Name(), "err", err)
		return
	}
	m.state.Restarts++
	h.log.Info("killed component started again", "component", m.comp.Name(), "restarts", m.state.Restarts)
}

// stopRestarts cancels the restarts still waiting and waits for those
// under way.
func (h *Host) stopRestarts() {
	h.lifeMu.Lock()
	if h.stopLife != nil {
		h.stopLife()
	}
	h.lifeMu.Unlock()
	h.restarts.Wait()
}
