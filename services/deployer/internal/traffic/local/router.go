// Package local is the deployer's own traffic router: a weighted reverse
// proxy (net/http/httputil) in front of an application's stable and canary
// upstreams, with per-version Prometheus metrics on its own listener.
//
// The route (canary weight and the two upstreams) is one atomic value: a
// change applies to the very next request, and a request never sees half
// of one. Requests are split by a counter, not at random: at weight w,
// exactly w of every 100 consecutive requests go to the canary, spread
// evenly; at 0 none do, and at 100 all do.
//
// Paths under "/-/" belong to the router and are never proxied:
// /-/metrics (policy.RouterMetricsPath) and /-/healthz.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/traffic"
)

// VersionHeader is set on every proxied response to the version that served
// it, "stable" or "canary", so a client (the demo's traffic generator, a
// test) can see the split.
const VersionHeader = "X-Rampart-Version"

// StatusClientClosedRequest is recorded when the client goes away before
// the upstream answers (nginx's 499): it is not the upstream's failure, so
// it must not count as a 5xx against the canary.
const StatusClientClosedRequest = 499

// HealthzPath answers 200 while the router serves.
const HealthzPath = "/-/healthz"

// reservedPrefix is the router's own path space, never proxied.
const reservedPrefix = "/-/"

// Options are a local router's optional dependencies.
type Options struct {
	// Logger receives weight changes and upstream errors (default: discard).
	Logger *slog.Logger
	// Registerer is the host's registry; the router's metrics are also
	// registered there. They are always served on the router's own
	// registry at /-/metrics.
	Registerer prometheus.Registerer
	// Transport carries proxied requests (default: a clone of
	// http.DefaultTransport keeping more idle connections per upstream).
	Transport http.RoundTripper
	// InitialWeight is the canary weight before any SetWeight (default 0).
	InitialWeight int
}

// Router is one application's local router. It is an http.Handler, served
// on conf.Listen by Start.
type Router struct {
	app       string
	listen    string
	log       *slog.Logger
	metrics   *metrics
	transport http.RoundTripper
	mux       *http.ServeMux

	// route is what requests read, lock-free; mu serialises the writers
	// (SetWeight, SetUpstreams) so that none of their changes is lost.
	route atomic.Pointer[route]
	mu    sync.Mutex
	// seq is the position of the next split request in its window of 100
	// (see choose).
	seq atomic.Uint64
	// fault is the chaos drill's fault on the canary, nil when none
	// (fault.go).
	fault atomic.Pointer[activeFault]

	srvMu     sync.Mutex
	srv       *http.Server
	ln        net.Listener
	serveDone chan struct{}
}

var _ traffic.Router = (*Router)(nil)

// route is one consistent state of the router.
type route struct {
	weight         int
	stable, canary *backend
}

// backend is one version's upstream and its instrumented proxy.
type backend struct {
	version string
	url     *url.URL
	handler http.Handler
}

// New returns the router of app with the listen address and upstreams of
// conf. It does not listen until Start.
func New(app string, conf policy.LocalRouter, opts Options) (*Router, error) {
	if err := traffic.ValidateWeight(opts.InitialWeight); err != nil {
		return nil, fmt.Errorf("local router for %s: initial weight: %w", app, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(app, opts.Registerer)
	if err != nil {
		return nil, err
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 512
		t.MaxIdleConnsPerHost = 256
		tr = t
	}
	r := &Router{
		app:       app,
		listen:    conf.Listen,
		log:       log.With("router", policy.RouterLocal), // the caller names the app (the deployer's app does)
		metrics:   m,
		transport: tr,
	}
	rt, err := r.newRoute(conf.Stable, conf.Canary, opts.InitialWeight)
	if err != nil {
		return nil, err
	}
	r.route.Store(rt)
	m.weight.Set(float64(rt.weight))

	r.mux = http.NewServeMux()
	r.mux.Handle(policy.RouterMetricsPath, m.handler())
	r.mux.HandleFunc(HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return r, nil
}

// SetWeight sends canaryPercent of the following requests to the canary.
// The very next request is split by the new weight.
func (r *Router) SetWeight(_ context.Context, canaryPercent int) error {
	if err := traffic.ValidateWeight(canaryPercent); err != nil {
		return fmt.Errorf("local router for %s: %w", r.app, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.route.Load()
	if cur.weight == canaryPercent {
		return nil
	}
	next := *cur
	next.weight = canaryPercent
	r.route.Store(&next)
	r.metrics.weight.Set(float64(canaryPercent))
	r.log.Info("canary weight set", "from", cur.weight, "to", canaryPercent)
	return nil
}

// Weight is the canary percent in force.
func (r *Router) Weight() int { return r.route.Load().weight }

// SetUpstreams points the stable and canary slots at new base URLs, keeping
// the weight; requests already in flight finish on the old ones. The
// rollout does not need it when each slot has a fixed address (the policy's
// stable and canary URLs, redeployed in place); it is for a deployer that
// starts versions on new addresses, for example a release that moves the
// completed canary's address into the stable slot.
func (r *Router) SetUpstreams(stable, canary string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.route.Load()
	next, err := r.newRoute(stable, canary, cur.weight)
	if err != nil {
		return err
	}
	r.route.Store(next)
	r.log.Info("upstreams set", "stable", stable, "canary", canary)
	return nil
}

// Upstreams are the base URLs of the stable and canary slots.
func (r *Router) Upstreams() (stable, canary string) {
	rt := r.route.Load()
	return rt.stable.url.String(), rt.canary.url.String()
}

// ServeHTTP serves the router's own paths under /-/ and proxies every
// other request to the version the weight chooses.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if strings.HasPrefix(req.URL.Path, reservedPrefix) {
		r.mux.ServeHTTP(w, req)
		return
	}
	b := r.choose(r.route.Load())
	w.Header().Set(VersionHeader, b.version)
	b.handler.ServeHTTP(w, req)
}

// choose picks the version for the next request. Request n goes to the
// canary when floor((n+1)·w/100) > floor(n·w/100): over any 100
// consecutive requests at weight w that is exactly w of them, evenly
// spaced. Weights 0 and 100 do not consult the counter at all.
func (r *Router) choose(rt *route) *backend {
	switch rt.weight {
	case traffic.MinWeight:
		return rt.stable
	case traffic.MaxWeight:
		return rt.canary
	}
	n := r.next()
	w := uint64(rt.weight)
	if (n+1)*w/100 > n*w/100 {
		return rt.canary
	}
	return rt.stable
}

// next numbers the request within the current window of 100, 0..99. The
// counter itself wraps at 100 (not at 2^64, which 100 does not divide), so
// every window is whole however long the router runs.
func (r *Router) next() uint64 {
	for {
		n := r.seq.Load()
		if r.seq.CompareAndSwap(n, (n+1)%100) {
			return n
		}
	}
}

func (r *Router) newRoute(stable, canary string, weight int) (*route, error) {
	s, err := r.newBackend(policy.VersionStable, stable)
	if err != nil {
		return nil, err
	}
	c, err := r.newBackend(policy.VersionCanary, canary)
	if err != nil {
		return nil, err
	}
	return &route{weight: weight, stable: s, canary: c}, nil
}

// newBackend builds the instrumented proxy to one version's upstream.
func (r *Router) newBackend(version, base string) (*backend, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("local router for %s: %s upstream: %w", r.app, version, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("local router for %s: %s upstream %q is not an http(s) URL", r.app, version, base)
	}
	log := r.log.With("version", version, "upstream", base)
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: r.transport,
		// Flush streamed responses (server-sent events) as they come.
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() != nil {
				w.WriteHeader(StatusClientClosedRequest)
				return
			}
			// Per request, so Debug: the 5xx counter is the signal.
			log.Debug("upstream request failed", "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	var h http.Handler = p
	if version == policy.VersionCanary {
		// Inside the metrics: an injected 500 or delay counts against the
		// canary exactly as the canary's own would.
		h = r.faulty(h)
	}
	return &backend{version: version, url: u, handler: r.metrics.instrument(version, h)}, nil
}

// Start listens on the configured address and serves in the background
// until Shutdown or Close. ctx bounds only the listen.
func (r *Router) Start(ctx context.Context) error {
	r.srvMu.Lock()
	defer r.srvMu.Unlock()
	if r.srv != nil {
		return fmt.Errorf("local router for %s: already started", r.app)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.listen)
	if err != nil {
		return fmt.Errorf("local router for %s: listen on %s: %w", r.app, r.listen, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	r.srv, r.ln, r.serveDone = srv, ln, done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("local router stopped serving", "err", err)
		}
	}()
	r.log.Info("local router listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the address the router listens on (useful with port 0), or ""
// before Start.
func (r *Router) Addr() string {
	r.srvMu.Lock()
	defer r.srvMu.Unlock()
	if r.ln == nil {
		return ""
	}
	return r.ln.Addr().String()
}

// Shutdown stops listening and waits, within ctx, for requests in flight
// to finish. It is a no-op before Start.
func (r *Router) Shutdown(ctx context.Context) error {
	return r.stop(func(srv *http.Server) error { return srv.Shutdown(ctx) })
}

// Close stops at once, cutting requests in flight.
func (r *Router) Close() error {
	return r.stop(func(srv *http.Server) error { return srv.Close() })
}

func (r *Router) stop(how func(*http.Server) error) error {
	r.srvMu.Lock()
	srv, done := r.srv, r.serveDone
	r.srvMu.Unlock()
	if srv == nil {
		return nil
	}
	err := how(srv)
	if err == nil {
		<-done
	}
	if t, ok := r.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("local router for %s: stop: %w", r.app, err)
	}
	return nil
}
