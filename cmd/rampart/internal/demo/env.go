package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/service"
	deployer "github.com/rampartci/rampart/services/deployer/app"
	scanner "github.com/rampartci/rampart/services/scanner/app"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

// App is the demo application's name; its image repository is
// <registry>/demo/shop.
const App = "shop"

// Staging is the demo application's stage before production.
const Staging = "staging"

// FrontendContract is what the shop's frontend reads of its items API: the
// contract replayed against every candidate in staging.
const FrontendContract = `consumer: frontend
provider: shop
interactions:
  - name: list items
    request: {method: GET, path: /api/items, headers: {Accept: application/json}}
    response:
      status: 200
      fields: {items: array, "items[].name": string, "items[].price": number}
`

// Config shapes a demo environment.
type Config struct {
	// DataDir holds the mesh's data; it must exist.
	DataDir string
	// Pause is how long each canary step holds.
	Pause time.Duration
	// Interval is the watcher's analysis interval.
	Interval time.Duration
	// RPS is the traffic generator's request rate (0: no traffic).
	RPS    int
	Logger *slog.Logger
	// OnEvent, when set, sees every event on the bus as it arrives.
	OnEvent func(Seen)
	// Kube, when set, releases the application to a Kubernetes cluster
	// instead of the demo's own slots (see kube.go).
	Kube *Kube
}

// Env is a running demo environment: the mesh, an OCI registry, the demo
// application's two slots behind the deployer's local router, PagerDuty and
// Slack stand-ins, and user traffic.
type Env struct {
	Mesh       *mesh.Mesh
	Registry   string // host:port of the in-memory OCI registry
	Router     string // host:port of the local router users reach the app at
	work       *workload
	pager      *pagerSink
	chat       *chatSink
	reg        *sampleimage.Registry
	traffic    traffic
	stop       context.CancelFunc
	policy     *policy.Policy
	nc         *nats.Conn
	bus        *bus.Bus
	rec        *recorder
	dataDir    string
	trafficCtx context.Context
	// notifyErr is the last failure to deliver a push notification.
	notifyErr atomic.Pointer[error]
}

// Start brings a demo environment up.
func Start(ctx context.Context, cfg Config) (_ *Env, err error) {
	e := &Env{pager: newPagerSink(), chat: newChatSink(), dataDir: cfg.DataDir}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	// The registry tells the scanner about every manifest push, as a CNCF
	// Distribution registry configured with a notification endpoint does.
	e.reg = sampleimage.StartRegistry(sampleimage.RegistryOptions{OnManifestPut: e.notify, Logger: cfg.Logger})
	e.Registry = e.reg.Host
	if e.work, err = newWorkload(); err != nil {
		return nil, err
	}

	// The watcher scrapes the router at the address the policy names, so it
	// must be a real port, not ":0".
	routerAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(cfg.DataDir, "pagerduty.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("d", 32)), 0o600); err != nil {
		return nil, err
	}
	contractFile := filepath.Join(cfg.DataDir, "frontend.contract.yaml")
	if err := os.WriteFile(contractFile, []byte(FrontendContract), 0o600); err != nil {
		return nil, err
	}
	hookFile := filepath.Join(cfg.DataDir, "slack.webhook")
	if err := os.WriteFile(hookFile, []byte(e.chat.srv.URL), 0o600); err != nil {
		return nil, err
	}
	doc := fmt.Sprintf(`version: 1
apps:
  - name: %s
    image: %s/demo/shop
    environment: demo
    router:
      type: local
      local: {listen: %q, stable: %q, canary: %q}
    canary: {steps: [5, 25, 50, 100], pause: %s}
    analysis:
      provider: scrape
      interval: %s
      errorRate: {max: 0.01, minRequests: 20}
      memory: {maxRatio: 1.9, metric: %s}
      siem: {enabled: true}
      latency: {maxMean: 250ms}
    notify:
      pagerduty: {routingKey: {file: %q}, severity: critical, url: %q}
      slack: {webhook: {file: %q}}
    stages:
      - name: %s
        url: %s
        checks: {dast: {openapi: /openapi.json}, contracts: [%q], timeout: 10s}
      - name: production
`, App, e.Registry, routerAddr, e.work.stable.URL(), e.work.canary.URL(), cfg.Pause, cfg.Interval, MemoryMetric, keyFile, e.pager.srv.URL, hookFile,
		Staging, e.work.staging.URL(), contractFile)
	if cfg.Kube != nil {
		doc = cfg.Kube.policy(e.Registry, cfg)
	}
	if e.policy, err = policy.Parse("demo.yaml", []byte(doc)); err != nil {
		return nil, err
	}
	svc := service.DefaultOptions("rampart-demo")
	svc.HTTPAddr = "127.0.0.1:0"
	e.Mesh, err = mesh.Start(ctx, mesh.Options{
		DataDir:    cfg.DataDir,
		NATSListen: "127.0.0.1:0",
		Service:    svc,
		HTTPS:      true, // as `rampart up`: the demo's requests trust the mesh's CA
		Policy:     policy.StoreOf(e.policy),
		Deployer:   deployer.Options{Workload: e.work},
		// The demo's repositories are file:// ones on this machine.
		Scanner: scanner.Options{AllowLocalRepos: true},
	}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	e.Router = e.Mesh.Deployer.RouterAddr(App)
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stop = cancel
	// The demo watches and drives the mesh as its operator would.
	auth, err := e.Mesh.Admin.Options()
	if err != nil {
		return nil, err
	}
	if e.nc, err = nats.Connect(e.Mesh.NATSURL, append(auth, nats.Name("rampart-demo"), nats.RootCAs(e.Mesh.CAFile))...); err != nil {
		return nil, err
	}
	if e.bus, err = bus.New(e.nc, cfg.Logger); err != nil {
		return nil, err
	}
	e.rec = newRecorder(cfg.OnEvent)
	if err := e.rec.run(tctx, e.bus); err != nil {
		return nil, err
	}
	e.trafficCtx = tctx
	if cfg.RPS > 0 {
		e.StartTraffic(cfg.RPS)
	}
	return e, nil
}

// StartTraffic sends rps requests per second to the app through the router
// until the environment closes.
func (e *Env) StartTraffic(rps int) {
	go e.traffic.run(e.trafficCtx, "http://"+e.Router+"/", rps)
}

// Close stops everything.
func (e *Env) Close() {
	if e.stop != nil {
		e.stop()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.Mesh != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_ = e.Mesh.Shutdown(ctx)
		cancel()
	}
	if e.work != nil {
		e.work.close()
	}
	if e.reg != nil {
		e.reg.Close()
	}
	for _, s := range []*httptest.Server{e.pager.srv, e.chat.srv} {
		if s != nil {
			s.Close()
		}
	}
}

// Image describes a demo version to build.
type Image struct {
	Version   string
	FailRatio float64
	// Vulnerable builds the version on an Alpine base with a Critical
	// openssl CVE (in the fixture DB); otherwise the base is clean.
	Vulnerable bool
	// Medium builds it on a base with one Medium (a busybox CVE with a fix
	// published), which the default gate lets through.
	Medium bool
	// PriceField renames the items API's price field (its spec still
	// says price): a break its frontend's contract catches in staging.
	PriceField string
}

// Pushed is a version pushed to the registry.
type Pushed struct {
	Digest string
	Purl   string
}

// Push builds the version's image and pushes it to the registry as
// demo/shop:<version>. The registry notifies the scanner, which scans it.
func (e *Env) Push(ctx context.Context, im Image) (Pushed, error) {
	spec := sampleimage.CleanAlpine()
	switch {
	case im.Vulnerable:
		spec = sampleimage.VulnerableAlpine()
	case im.Medium:
		spec = sampleimage.MediumAlpine()
	}
	base, err := spec.Build()
	if err != nil {
		return Pushed{}, err
	}
	cfg, err := base.ConfigFile()
	if err != nil {
		return Pushed{}, err
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{LabelVersion: im.Version}
	if im.FailRatio > 0 {
		cfg.Config.Labels[LabelFailRatio] = strconv.FormatFloat(im.FailRatio, 'f', -1, 64)
	}
	if im.PriceField != "" {
		cfg.Config.Labels[LabelPriceField] = im.PriceField
	}
	img, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		return Pushed{}, err
	}
	p, err := e.reg.Push(ctx, "demo/shop", im.Version, img)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", im.Version, err)
	}
	if perr := e.notifyErr.Swap(nil); perr != nil {
		return Pushed{}, fmt.Errorf("push %s: the registry's notification failed: %w", im.Version, *perr)
	}
	o, err := events.NewOCI(p.Repository, p.Digest, im.Version)
	if err != nil {
		return Pushed{}, err
	}
	return Pushed{Digest: p.Digest, Purl: o.String()}, nil
}

// notify posts the registry's push notification to the scanner's webhook.
func (e *Env) notify(p sampleimage.ManifestPut) {
	if e.Mesh == nil {
		return
	}
	body, err := p.DistributionEnvelope(e.Registry, fmt.Sprintf("push-%s-%s", p.Reference, p.Digest[7:19]), time.Now())
	if err == nil {
		var token []byte
		if token, err = os.ReadFile(filepath.Join(e.dataDir, "scanner", "registry.token")); err == nil {
			err = e.postAs(context.Background(), "/hooks/registry", body, "application/vnd.docker.distribution.events.v2+json",
				map[string]string{"Authorization": "Bearer " + strings.TrimSpace(string(token))})
		}
	}
	if err != nil {
		e.notifyErr.Store(&err)
	}
}

// ErrTimeout is returned when something the demo waits for does not happen.
var ErrTimeout = errors.New("timed out")

// waitUntil polls f until it is true or the deadline passes.
func waitUntil(ctx context.Context, timeout time.Duration, what string, f func() bool) error {
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s waiting for %s", ErrTimeout, timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// freePort finds a loopback port nothing listens on.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
