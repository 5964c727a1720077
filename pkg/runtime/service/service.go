// Package service hosts Rampart services: it connects to NATS, ensures the
// RAMPART stream, serves /healthz, /readyz, /metrics and each component's
// routes on one HTTP listener, starts the components, and on shutdown stops
// them in reverse order before draining the NATS connection.
//
// A process runs one component (services/<svc>/cmd/<svc>) or all of them
// (rampart up); the components are the same either way.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
)

// Component is one Rampart service.
type Component interface {
	// Name is the service's name: its durable consumer, metric prefix and logger.
	Name() string
	// Start creates the component's consumers and starts its work. It returns
	// once the component is running.
	Start(ctx context.Context, deps Deps) error
	// Stop drains the component's consumers and stops its work.
	Stop(ctx context.Context) error
}

// Router is a component that serves HTTP routes.
type Router interface {
	Routes(mux *http.ServeMux)
}

// ReadyChecker is a component that can tell whether it is ready.
type ReadyChecker interface {
	Ready(ctx context.Context) error
}

// Deps is what the host gives each component.
type Deps struct {
	Bus        *bus.Bus
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Stopping is closed when the host stops taking HTTP requests, or this
	// start of the component is killed: a handler that streams for as long
	// as the client stays (server-sent events) returns then, so the
	// server's graceful shutdown can finish.
	Stopping <-chan struct{}
}

// Host is a running set of components.
type Host struct {
	opts     Options
	log      *slog.Logger
	conns    []*nats.Conn
	srv      *http.Server
	listener net.Listener
	cleanups []cleanup
	serveErr chan error
	members  []*member
	// life ends at Shutdown: restarts after a kill wait on it.
	life     context.Context
	stopLife context.CancelFunc
	lifeMu   sync.Mutex // orders a restart's start against stopLife
	restarts sync.WaitGroup
}

// cleanup is one named step of the shutdown stack, run last-in first-out.
type cleanup struct {
	name string
	fn   func(ctx context.Context) error
}

// Start connects, starts every component and begins serving HTTP. On error,
// whatever had started is stopped again.
func Start(ctx context.Context, opts Options, logger *slog.Logger, comps ...Component) (h *Host, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.checkIdentity(); err != nil {
		return nil, err
	}
	h = &Host{opts: opts, log: logger, serveErr: make(chan error, 1)}
	h.life, h.stopLife = context.WithCancel(context.WithoutCancel(ctx))
	started := h // h is nil once an error is returned
	defer func() {
		if err != nil {
			_ = started.Shutdown(context.Background())
		}
	}()

	stopTracing, err := startTracing(ctx, opts.Name)
	if err != nil {
		return nil, err
	}
	if stopTracing != nil {
		// Pushed first so it runs last: the components' final spans are flushed.
		h.push("tracing", stopTracing)
	}

	var checks []namedCheck
	if !opts.Bootstrap.IsZero() {
		opts.starting("the " + bus.StreamName + " stream")
		if err := h.bootstrap(ctx, opts.Bootstrap); err != nil {
			return nil, err
		}
	}
	// One connection for every component, or one per component under its
	// own identity; each is a readiness check of its own.
	var shared *bus.Bus
	if len(opts.Identities) == 0 {
		opts.starting("NATS at " + opts.NATSURL)
		if shared, err = h.connect(ctx, opts.Name, opts.NATS, "nats", &checks); err != nil {
			return nil, err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), bus.Collector())
	mux := http.NewServeMux()
	for _, c := range comps {
		b := shared
		if b == nil {
			id, ok := opts.Identities[c.Name()]
			if !ok {
				return nil, fmt.Errorf("start %s: no NATS identity for it among the host's identities", c.Name())
			}
			opts.starting("NATS for " + c.Name())
			if b, err = h.connect(ctx, opts.Name+"-"+c.Name(), id, "nats "+c.Name(), &checks); err != nil {
				return nil, fmt.Errorf("start %s: %w", c.Name(), err)
			}
		}
		m := &member{comp: c, bus: b, log: logger.With("service", c.Name())}
		opts.starting(c.Name())
		m.mu.Lock()
		err := m.start(ctx)
		m.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", c.Name(), err)
		}
		h.members = append(h.members, m)
		h.push(c.Name(), func(ctx context.Context) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.stop(ctx)
		})
		if r, ok := c.(Router); ok {
			r.Routes(mux)
		}
		checks = append(checks, namedCheck{c.Name(), m.ready})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /readyz", readyHandler(checks))
	// The host's own collectors, and each component's start in force.
	gs := prometheus.Gatherers{reg, gatherer(h.members)}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gs, promhttp.HandlerOpts{Registry: reg}))
	if opts.ChaosToken != "" {
		h.killRoutes(mux, opts.ChaosToken)
	}

	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.HTTPAddr, err)
	}
	h.listener = ln
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	h.srv.RegisterOnShutdown(func() {
		for _, m := range h.members {
			m.mu.Lock()
			m.endStreams()
			m.mu.Unlock()
		}
	})
	go func() {
		if err := opts.serve(h.srv, ln); !errors.Is(err, http.ErrServerClosed) {
			h.serveErr <- err
		}
	}()
	// Pushed last so it runs first: stop taking requests before stopping components.
	h.push("http", h.srv.Shutdown)
	return h, nil
}

// connect opens a connection as id, drained at shutdown and checked by
// /readyz as check, and returns a Bus on it with the RAMPART stream open.
func (h *Host) connect(ctx context.Context, name string, id natsauth.Identity, check string, checks *[]namedCheck) (*bus.Bus, error) {
	nc, err := h.dial(name, id)
	if err != nil {
		return nil, err
	}
	h.conns = append(h.conns, nc)
	h.push(check, func(ctx context.Context) error { return drain(ctx, nc) })
	*checks = append(*checks, namedCheck{check, func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("NATS connection is %s", nc.Status())
		}
		return nil
	}})
	b, err := bus.New(nc, h.log)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := b.OpenStream(sctx, h.opts.Stream); err != nil {
		return nil, err
	}
	return b, nil
}

// bootstrap creates or updates the RAMPART stream to the options as id
// (allowed to), on a connection of its own closed again at once.
func (h *Host) bootstrap(ctx context.Context, id natsauth.Identity) error {
	nc, err := h.dial(h.opts.Name+"-bootstrap", id)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.New(nc, h.log)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = b.EnsureStream(sctx, h.opts.Stream)
	return err
}

// dial connects to the server as id; the connection reconnects for ever.
func (h *Host) dial(name string, id natsauth.Identity) (*nats.Conn, error) {
	auth, err := id.Options()
	if err != nil {
		return nil, err
	}
	secure, err := h.opts.NATSTLS.Options()
	if err != nil {
		return nil, err
	}
	auth = append(auth, secure...)
	logger := h.log.With("nats", name)
	nc, err := nats.Connect(h.opts.NATSURL, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
		// A refused subject is a bug in the permission table or an
		// attempt outside the service's job: say which.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Error("NATS error", "err", err)
		}),
	}, auth...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s as %s: %w", h.opts.NATSURL, identityName(id), err)
	}
	return nc, nil
}

func identityName(id natsauth.Identity) string {
	if id.Name == "" {
		return "the given identity"
	}
	return id.Name
}

// HTTPAddr is the address the HTTP listener is bound to.
func (h *Host) HTTPAddr() string { return h.listener.Addr().String() }

// NATSURL is the URL of the NATS server the host is connected to.
func (h *Host) NATSURL() string {
	if len(h.conns) == 0 {
		return h.opts.NATSURL
	}
	return h.conns[0].ConnectedUrlRedacted()
}

// Wait blocks until ctx ends or the HTTP server fails.
func (h *Host) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-h.serveErr:
		return fmt.Errorf("HTTP server: %w", err)
	}
}

// Shutdown runs the cleanup stack in reverse order, each step bounded by ctx,
// and reports every step that failed.
func (h *Host) Shutdown(ctx context.Context) error {
	h.stopRestarts()
	var errs []error
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		c := h.cleanups[i]
		if err := c.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
		}
	}
	h.cleanups = nil
	return errors.Join(errs...)
}

// starting tells opts.Starting what Start waits for next.
func (o Options) starting(what string) {
	if o.Starting != nil {
		o.Starting(what)
	}
}

func (h *Host) push(name string, fn func(ctx context.Context) error) {
	h.cleanups = append(h.cleanups, cleanup{name, fn})
}

// Run starts the components, serves until ctx ends, then shuts down within
// the configured timeout.
func Run(ctx context.Context, opts Options, logger *slog.Logger, comps ...Component) error {
	h, err := Start(ctx, opts, logger, comps...)
	if err != nil {
		return err
	}
	logger.Info("serving", "http", h.HTTPAddr(), "nats", h.NATSURL())
	werr := h.Wait(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	return errors.Join(werr, h.Shutdown(sctx))
}

// drain drains nc (pending acks and publishes are flushed) and waits for it
// to close.
func drain(ctx context.Context, nc *nats.Conn) error {
	if nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return err
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return ctx.Err()
	}
}
