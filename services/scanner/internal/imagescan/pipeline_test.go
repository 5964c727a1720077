package imagescan_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/scanner/internal/imagescan"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

// The vulnerability DB is process-global: the test binary shares one fixture
// DB and one in-memory registry, set up in TestMain.
var env struct {
	cacheDir   string
	db         *vulndb.DB
	reg        *sampleimage.Registry
	vulnerable sampleimage.Pushed
	clean      sampleimage.Pushed
	clean2     sampleimage.Pushed // another clean image, another digest
}

// dbTime is the fixture DB's UpdatedAt.
var dbTime = time.Date(2026, 8, 13, 0, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	flag.Parse()
	code := run(m) // its defers stop the registry and close the DB first
	if code == 0 {
		if err := goleak.Find(natstest.LeakOptions...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func run(m *testing.M) int {
	cache, err := os.MkdirTemp("", "pipeline-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(cache)
	env.cacheDir = cache
	if err := vulndb.Build(cache, dbTime); err != nil {
		fmt.Fprintln(os.Stderr, "build fixture DB:", err)
		return 1
	}
	if env.db, err = vulndb.Open(cache, nil); err != nil {
		fmt.Fprintln(os.Stderr, "open fixture DB:", err)
		return 1
	}
	defer env.db.Close()
	env.reg = sampleimage.StartRegistry(sampleimage.RegistryOptions{})
	defer env.reg.Close()
	ctx := context.Background()
	clean2 := sampleimage.CleanAlpine()
	clean2.Packages = append(clean2.Packages, sampleimage.Package{Name: "tzdata", Version: "2025b-r0", License: "Public-Domain"})
	for _, p := range []struct {
		to   *sampleimage.Pushed
		tag  string
		spec sampleimage.Image
	}{{&env.vulnerable, "vulnerable", sampleimage.VulnerableAlpine()}, {&env.clean, "clean", sampleimage.CleanAlpine()}, {&env.clean2, "clean2", clean2}} {
		if *p.to, err = env.reg.BuildAndPush(ctx, "team/app", p.tag, p.spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// countingScanner counts Trivy calls and can slow image scans down.
type countingScanner struct {
	next         imagescan.Scanner
	images, sbom atomic.Int64
	delay        time.Duration
}

func (c *countingScanner) ScanImage(ctx context.Context, ref string) (*scan.Result, error) {
	c.images.Add(1)
	if c.delay > 0 {
		select {
		case <-time.After(c.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.next.ScanImage(ctx, ref)
}

func (c *countingScanner) ScanSBOM(ctx context.Context, sbom []byte) (*scan.Result, error) {
	c.sbom.Add(1)
	return c.next.ScanSBOM(ctx, sbom)
}

type fixture struct {
	b       *bus.Bus
	p       *imagescan.Pipeline
	scanner *countingScanner
	key     ed25519.PrivateKey
	reg     *prometheus.Registry
}

func imageRepo() string { return env.reg.Host + "/team/app" }

func setup(t testing.TB, opts imagescan.Options) fixture {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	sc, err := scan.New(env.db, scan.Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	cs := &countingScanner{next: sc}
	_, key, _ := ed25519.GenerateKey(nil)
	reg := prometheus.NewRegistry()
	opts.Key, opts.Registerer = key, reg
	if opts.Policy == nil {
		opts.Policy = policy.StoreOf(&policy.Policy{Version: 1, Apps: []policy.App{{Name: "shop", Image: imageRepo(), Environment: "production"}}})
	}
	if opts.DBDir == "" {
		opts.DBDir = vulndb.Dir(env.cacheDir)
	}
	p, err := imagescan.New(b, cs, env.db, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{b: b, p: p, scanner: cs, key: key, reg: reg}
}

func (f fixture) start(t testing.TB) {
	t.Helper()
	if err := f.p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.p.Stop(ctx)
	})
}

// pushEvent is the artifact-pushed event the ingress would publish.
func pushEvent(t testing.TB, id string, p sampleimage.Pushed) cloudevents.Event {
	t.Helper()
	oci, err := events.NewOCI(p.Repository, p.Digest, p.Tag)
	if err != nil {
		t.Fatal(err)
	}
	_, repo, _ := strings.Cut(p.Repository, "/")
	ev, err := events.NewArtifactPushed(events.Meta{ID: id, Source: "/test/registry", ChainID: "chain-" + id},
		events.Artifact{Purl: oci.String(), Registry: env.reg.Host, Repository: repo, Digest: p.Digest, Tag: p.Tag})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func purl(t testing.TB, p sampleimage.Pushed) string {
	t.Helper()
	oci, err := events.NewOCI(p.Repository, p.Digest, p.Tag)
	if err != nil {
		t.Fatal(err)
	}
	return oci.String()
}

func publish(t testing.TB, b *bus.Bus, ev cloudevents.Event) {
	t.Helper()
	if _, err := b.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// stored returns the events in the RAMPART stream of the given type.
func stored(t testing.TB, b *bus.Bus, typ string) []cloudevents.Event {
	t.Helper()
	ctx := context.Background()
	s, err := b.JetStream().Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []cloudevents.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.FromMsg(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type() == typ {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvents polls until n events of typ are stored.
func waitEvents(t testing.TB, b *bus.Bus, typ string, n int) []cloudevents.Event {
	t.Helper()
	var evs []cloudevents.Event
	natstest.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if evs = stored(t, b, typ); len(evs) < n {
			return fmt.Errorf("%d %s events, want %d", len(evs), typ, n)
		}
		return nil
	})
	return evs
}

func verify(t testing.TB, f fixture, ev cloudevents.Event) events.Scan {
	t.Helper()
	s, err := events.VerifyScan(ev, f.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("verdict %s: %v", ev.ID(), err)
	}
	return s
}

func TestVerdicts(t *testing.T) {
	f := setup(t, imagescan.Options{})
	f.start(t)
	publish(t, f.b, pushEvent(t, "push-vulnerable", env.vulnerable))
	publish(t, f.b, pushEvent(t, "push-clean", env.clean))
	verdicts := waitEvents(t, f.b, events.TypeTestSuiteFinished, 2)

	byTarget := map[string]cloudevents.Event{}
	for _, ev := range verdicts {
		byTarget[verify(t, f, ev).Target] = ev
	}
	vev := byTarget[purl(t, env.vulnerable)]
	v := verify(t, f, vev)
	if v.Outcome != events.OutcomeBlocked || !strings.Contains(v.Reason, sampleimage.CriticalOpenSSL) {
		t.Errorf("vulnerable image: outcome %s reason %q, want blocked naming %s", v.Outcome, v.Reason, sampleimage.CriticalOpenSSL)
	}
	if v.Counts["critical"] == 0 || v.Counts["high"] == 0 || len(v.Findings) == 0 || v.Findings[0].ID != sampleimage.CriticalOpenSSL {
		t.Errorf("vulnerable image: counts %v findings %+v", v.Counts, v.Findings)
	}
	if v.Environment != "production" || events.App(vev) != "shop" || events.SubjectOf(vev) != "rampart.scan.shop" {
		t.Errorf("verdict env %s app %s subject %s, want production/shop from the policy", v.Environment, events.App(vev), events.SubjectOf(vev))
	}
	cd, err := events.Parse(vev)
	if err != nil {
		t.Fatal(err)
	}
	if events.ChainID(vev) != "chain-push-vulnerable" || cd.CausedBy() != "push-vulnerable" {
		t.Errorf("verdict chain %q caused by %q, want the push's", events.ChainID(vev), cd.CausedBy())
	}
	if v.DBVersion != env.db.Version().String() || v.PolicyVersion != "default" {
		t.Errorf("db %q policy %q", v.DBVersion, v.PolicyVersion)
	}
	c := verify(t, f, byTarget[purl(t, env.clean)])
	if c.Outcome != events.OutcomePass || c.Counts["critical"]+c.Counts["high"] != 0 {
		t.Errorf("clean image: %+v", c)
	}

	checkAttestations(t, f, v, c)

	// The SBOMs are stored by digest and announced.
	sboms := waitEvents(t, f.b, events.TypeTestOutputPublished, 2)
	for _, ev := range sboms {
		o, err := events.TestOutputOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		if o.Format != "application/vnd.cyclonedx+json" || !strings.HasPrefix(o.URI, "nats-object://RAMPART_SBOMS/sha256:") {
			t.Errorf("SBOM event %+v", o)
		}
	}
	obj, err := f.b.JetStream().ObjectStore(t.Context(), imagescan.SBOMBucket)
	if err != nil {
		t.Fatal(err)
	}
	sbom, err := obj.GetBytes(t.Context(), env.vulnerable.Digest)
	if err != nil || !strings.Contains(string(sbom), "CycloneDX") {
		t.Errorf("stored SBOM: %v %.80s", err, sbom)
	}
	if v.SBOMRef != imagescan.SBOMRef(env.vulnerable.Digest) {
		t.Errorf("verdict SBOM ref %s", v.SBOMRef)
	}
	if got := f.scanner.images.Load(); got != 2 {
		t.Errorf("%d image scans, want 2", got)
	}
}

// The verdict records each waiver the gate applied, with its owner and
// expiry, so that the ledger shows who accepted which risk until when.
func TestVerdictRecordsWaivers(t *testing.T) {
	pol, err := gate.Parse("policy.yaml", []byte(`block_on: [CRITICAL]
waivers:
  - {id: `+sampleimage.CriticalOpenSSL+`, package: libcrypto3, owner: alice@example.com, expires: 2099-01-01, reason: not reachable}
  - {id: `+sampleimage.CriticalOpenSSL+`, package: libssl3, owner: bob@example.com, expires: 2099-01-01}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t, imagescan.Options{Gate: pol})
	f.start(t)
	publish(t, f.b, pushEvent(t, "push-vulnerable", env.vulnerable))
	v := verify(t, f, waitEvents(t, f.b, events.TypeTestSuiteFinished, 1)[0])
	var got []string
	for _, w := range v.Waivers {
		got = append(got, w.ID+"/"+w.Package+" "+w.Owner+" "+w.Expires.Format(time.DateOnly)+" "+w.Reason)
	}
	want := []string{sampleimage.CriticalOpenSSL + "/libcrypto3 alice@example.com 2099-01-02 not reachable", sampleimage.CriticalOpenSSL + "/libssl3 bob@example.com 2099-01-02 "}
	if !slices.Equal(got, want) || v.Outcome != events.OutcomePass {
		t.Errorf("verdict %s with waivers %q, want pass with %q (%s)", v.Outcome, got, want, v.Reason)
	}
}

func TestSameDigestIsScannedOnce(t *testing.T) {
	f := setup(t, imagescan.Options{})
	f.start(t)
	publish(t, f.b, pushEvent(t, "push-1", env.vulnerable))
	waitEvents(t, f.b, events.TypeTestSuiteFinished, 1)
	// Pushed again (another tag, another registry event): the cached scan
	// is judged again and published with its own id and chain.
	again := env.vulnerable
	again.Tag = "again"
	publish(t, f.b, pushEvent(t, "push-2", again))
	verdicts := waitEvents(t, f.b, events.TypeTestSuiteFinished, 2)
	if got := f.scanner.images.Load(); got != 1 {
		t.Errorf("%d Trivy image scans, want 1: the second push must come from the cache", got)
	}
	second := verify(t, f, verdicts[1])
	first := verify(t, f, verdicts[0])
	if verdicts[0].ID() == verdicts[1].ID() || events.ChainID(verdicts[1]) != "chain-push-2" {
		t.Errorf("cached verdict id %s chain %s: want a new id on the second push's chain", verdicts[1].ID(), events.ChainID(verdicts[1]))
	}
	if second.Outcome != first.Outcome || second.Target != purl(t, again) || second.Reason != first.Reason {
		t.Errorf("cached verdict %+v differs from the first %+v", second, first)
	}
	if got := metricValue(t, f.reg, "rampart_scanner_cache_hits_total"); got != 1 {
		t.Errorf("cache hits %v", got)
	}
	// The same registry event delivered twice is one verdict.
	publish(t, f.b, pushEvent(t, "push-2", again))
	if n := len(stored(t, f.b, events.TypeArtifactPublished)); n != 2 {
		t.Errorf("%d push events stored, want 2", n)
	}
}

// metricValue sums the samples of the counter named name.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

func TestUnpullableImageIsAnErrorVerdict(t *testing.T) {
	f := setup(t, imagescan.Options{PullAttempts: 2, RetryBackoff: []time.Duration{50 * time.Millisecond}})
	f.start(t)
	missing := env.clean
	missing.Digest = "sha256:" + strings.Repeat("0", 64)
	publish(t, f.b, pushEvent(t, "push-missing", missing))
	v := verify(t, f, waitEvents(t, f.b, events.TypeTestSuiteFinished, 1)[0])
	if v.Outcome != events.OutcomeError || !strings.Contains(v.Reason, "could not be pulled") {
		t.Errorf("verdict %s %q, want error naming the pull", v.Outcome, v.Reason)
	}
	if got := f.scanner.images.Load(); got != 2 {
		t.Errorf("%d pull attempts, want 2", got)
	}
	// An error verdict is not cached: the next push tries again.
	publish(t, f.b, pushEvent(t, "push-missing-again", missing))
	waitEvents(t, f.b, events.TypeTestSuiteFinished, 2)
	if got := f.scanner.images.Load(); got != 4 {
		t.Errorf("%d pull attempts after a second push, want 4", got)
	}
}

// A scan that outlasts AckWait is kept alive with InProgress, so it is not
// redelivered and scanned twice.
// A scan longer than AckWait keeps its delivery alive: the server hands the
// message out once. (The scan count alone cannot tell: a redelivery that
// arrives after the first scan is served from the cache without scanning.)
func TestLongScanIsNotRedelivered(t *testing.T) {
	f := setup(t, imagescan.Options{AckWait: time.Second})
	f.scanner.delay = 2500 * time.Millisecond
	f.start(t)
	publish(t, f.b, pushEvent(t, "push-slow", env.clean))
	waitEvents(t, f.b, events.TypeTestSuiteFinished, 1)
	var ci *jetstream.ConsumerInfo
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		c, err := f.b.JetStream().Consumer(t.Context(), bus.StreamName, imagescan.Consumer.Durable)
		if err != nil {
			return err
		}
		if ci, err = c.Info(t.Context()); err != nil {
			return err
		}
		if ci.AckFloor.Stream < 1 || ci.NumAckPending != 0 {
			return fmt.Errorf("push not acknowledged yet: ack floor %d, %d pending", ci.AckFloor.Stream, ci.NumAckPending)
		}
		return nil
	})
	if ci.Delivered.Consumer != 1 || ci.NumRedelivered != 0 {
		t.Errorf("the push was delivered %d times (%d redelivered), want once: the scan did not keep its delivery alive",
			ci.Delivered.Consumer, ci.NumRedelivered)
	}
	if got := f.scanner.images.Load(); got != 1 {
		t.Errorf("%d scans, want 1", got)
	}
}

type commitRecorder struct{ got atomic.Int64 }

func (c *commitRecorder) Handle(context.Context, bus.Delivery) error {
	c.got.Add(1)
	return nil
}

func commitEvent(t testing.TB, id string) cloudevents.Event {
	t.Helper()
	ev, err := events.NewCommit(events.Meta{ID: id, Source: "/test/git"}, events.Commit{Repository: "github.com/acme/shop", SHA: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestCommits(t *testing.T) {
	t.Run("without a source scanner they are acknowledged, no verdict", func(t *testing.T) {
		f := setup(t, imagescan.Options{})
		f.start(t)
		publish(t, f.b, commitEvent(t, "commit-1"))
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			info, err := f.b.JetStream().Consumer(t.Context(), bus.StreamName, imagescan.Consumer.Durable)
			if err != nil {
				return err
			}
			ci, err := info.Info(t.Context())
			if err != nil {
				return err
			}
			if ci.AckFloor.Stream < 1 || ci.NumAckPending != 0 {
				return fmt.Errorf("commit not acknowledged: %+v", ci.AckFloor)
			}
			return nil
		})
		if n := len(stored(t, f.b, events.TypeTestSuiteFinished)); n != 0 {
			t.Errorf("%d verdicts for a commit nobody scanned", n)
		}
	})
	t.Run("a plugged-in source scanner gets them", func(t *testing.T) {
		rec := &commitRecorder{}
		f := setup(t, imagescan.Options{Commits: rec})
		f.start(t)
		publish(t, f.b, commitEvent(t, "commit-2"))
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if rec.got.Load() != 1 {
				return errors.New("commit not handed over")
			}
			return nil
		})
	})
}

// zeroDay is a DB update that adds a Critical advisory for musl, which
// every test image carries.
var zeroDay = fstest.MapFS{"zz-zero-day.yaml": {Data: []byte(`
- bucket: alpine 3.22
  pairs:
    - bucket: musl
      pairs:
        - key: CVE-2026-0001
          value:
            FixedVersion: 1.2.5-r99
- bucket: vulnerability
  pairs:
    - key: CVE-2026-0001
      value:
        Title: "musl: fixture zero-day"
        Severity: CRITICAL
`)}}

func TestZeroDayRescan(t *testing.T) {
	f := setup(t, imagescan.Options{})
	f.start(t)
	live, candidate := purl(t, env.clean), purl(t, env.clean2)

	// Both images pass under DB v1; one becomes live, the other is being
	// promoted.
	publish(t, f.b, pushEvent(t, "push-live", env.clean))
	publish(t, f.b, pushEvent(t, "push-candidate", env.clean2))
	for _, ev := range waitEvents(t, f.b, events.TypeTestSuiteFinished, 2) {
		if s := verify(t, f, ev); s.Outcome != events.OutcomePass {
			t.Fatalf("before the zero-day: %s is %s", s.Target, s.Outcome)
		}
	}
	rel, err := events.NewReleaseCompleted(events.Meta{ID: "release-1", Source: "/rampart/deployer", ChainID: "chain-push-live", App: "shop"},
		events.Release{RolloutID: "shop-1", App: "shop", Environment: "production", ArtifactID: live})
	if err != nil {
		t.Fatal(err)
	}
	promo, err := events.NewPromoted(events.Meta{ID: "promote-2", Source: "/rampart/deployer", ChainID: "chain-push-candidate", App: "shop"},
		events.Promotion{RolloutID: "shop-2", App: "shop", Environment: "production", ArtifactID: candidate, Previous: live, Steps: []int{5, 100}})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, f.b, rel)
	publish(t, f.b, promo)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ts, err := f.p.Targets(t.Context())
		if err != nil {
			return err
		}
		if len(ts) != 1 || ts[0].Live == nil || ts[0].InFlight == nil || ts[0].Live.Artifact != live || ts[0].InFlight.Artifact != candidate {
			return fmt.Errorf("targets %+v", ts)
		}
		return nil
	})

	// A new DB arrives with an advisory both images are affected by.
	t.Cleanup(func() {
		if err := vulndb.Build(env.cacheDir, dbTime); err != nil {
			t.Error(err)
		}
		if _, _, err := env.db.Reload(); err != nil {
			t.Error(err)
		}
	})
	if err := vulndb.Build(env.cacheDir, dbTime.Add(24*time.Hour), vulndb.Fixtures(), zeroDay); err != nil {
		t.Fatal(err)
	}
	pulls := f.scanner.images.Load()
	r, changed, err := f.p.CheckDB(t.Context())
	if err != nil || !changed || !r.DBChanged {
		t.Fatalf("CheckDB: changed %v report %+v err %v", changed, r, err)
	}
	if got := f.scanner.images.Load() - pulls; got != 0 {
		t.Errorf("%d images pulled during the re-scan, want 0 (stored SBOMs only)", got)
	}
	if got := f.scanner.sbom.Load(); got != 2 {
		t.Errorf("%d SBOM scans, want 2", got)
	}
	if len(r.Anomalies) != 1 || r.Anomalies[0] != live || len(r.Blocked) != 1 || r.Blocked[0] != candidate {
		t.Errorf("report %+v", r)
	}

	an := waitEvents(t, f.b, events.TypeIncidentDetected, 1)[0]
	a, err := events.AnomalyOf(an)
	if err != nil {
		t.Fatal(err)
	}
	if a.Target != events.TargetRelease || a.App != "shop" || a.ArtifactID != live || a.Rule != "cve" || !strings.Contains(a.Description, "CVE-2026-0001") {
		t.Errorf("anomaly %+v", a)
	}
	if events.ChainID(an) != "chain-push-live" {
		t.Errorf("anomaly chain %s, want the live release's", events.ChainID(an))
	}
	verdicts := waitEvents(t, f.b, events.TypeTestSuiteFinished, 3)
	b := verify(t, f, verdicts[2])
	if b.Target != candidate || b.Outcome != events.OutcomeBlocked || !strings.Contains(b.Reason, "CVE-2026-0001") || b.DBVersion != env.db.Version().String() {
		t.Errorf("re-scan verdict %+v", b)
	}

	// Nothing changed since: the periodic check does nothing.
	if _, changed, err := f.p.CheckDB(t.Context()); changed || err != nil {
		t.Errorf("second CheckDB: changed %v err %v", changed, err)
	}
	// A rollback to a version ends the flight and makes it live.
	rb, err := events.NewRollback(events.Meta{ID: "rollback-2", Source: "/rampart/deployer", App: "shop"},
		events.Rollback{RolloutID: "shop-2", App: "shop", Environment: "production", ArtifactID: live, From: candidate})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, f.b, rb)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ts, err := f.p.Targets(t.Context())
		if err != nil {
			return err
		}
		if len(ts) != 1 || ts[0].InFlight != nil || ts[0].Live.Artifact != live {
			return fmt.Errorf("targets after rollback %+v", ts)
		}
		return nil
	})
}

// checkAttestations reads the verdicts' in-toto attestations: the vulnerable
// image's scan lists every finding with its fix state and its summary
// FAILED; the clean image's summary PASSED under the default policy.
func checkAttestations(t *testing.T, f fixture, vulnerable, clean events.Scan) {
	t.Helper()
	v, err := attest.NewVerifier(f.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if len(vulnerable.Attestations) != 2 || len(clean.Attestations) != 2 {
		t.Fatalf("attestations: %d and %d, want a vuln scan and a summary each", len(vulnerable.Attestations), len(clean.Attestations))
	}
	st, err := v.Statement(t.Context(), vulnerable.Attestations[0], attest.PredicateVuln)
	if err != nil {
		t.Fatal(err)
	}
	oci, _ := events.ParseOCI(vulnerable.Target)
	if !attest.About(st, oci.Digest) {
		t.Errorf("vuln statement subject %v, want %s", st.GetSubject(), oci.Digest)
	}
	scan, err := attest.VulnOf(st)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range vulnerable.Counts {
		total += n
	}
	fs := scan.Scanner.Result.Findings
	if len(fs) != total || fs[0].ID != sampleimage.CriticalOpenSSL || fs[0].FixedVersion == "" || fs[0].Severity != "CRITICAL" {
		t.Errorf("vuln findings %d (want all %d) first %+v", len(fs), total, fs[0])
	}
	if scan.Scanner.DB.Version != vulnerable.DBVersion || !strings.HasPrefix(scan.Scanner.URI, "pkg:golang/github.com/aquasecurity/trivy@") {
		t.Errorf("vuln scanner %+v", scan.Scanner)
	}
	want := attest.Expect{Digest: oci.Digest, ResourceURI: vulnerable.Target, Policies: []string{gate.Default().Digest()}}
	if _, err := v.VerifySummary(t.Context(), vulnerable.Attestations[1], want); !errors.Is(err, attest.ErrNotPassed) {
		t.Errorf("vulnerable summary: err = %v, want ErrNotPassed", err)
	}
	coci, _ := events.ParseOCI(clean.Target)
	sum, err := v.VerifySummary(t.Context(), clean.Attestations[1], attest.Expect{Digest: coci.Digest, ResourceURI: clean.Target, Policies: want.Policies})
	if err != nil {
		t.Fatalf("clean summary: %v", err)
	}
	if sum.GetPolicy().GetUri() != gate.DefaultURI || sum.GetInputAttestations()[0].GetDigest()["sha256"] != attest.Digest(clean.Attestations[0]) {
		t.Errorf("clean summary %v", sum)
	}
}
