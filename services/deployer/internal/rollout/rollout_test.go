package rollout

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// fakeRouter records every weight it is given. The real routers have their
// own tests; here the rollout's decisions are what is checked.
type fakeRouter struct {
	mu      sync.Mutex
	weights []int
	// onSet, when set, runs before each weight is taken.
	onSet func(w int)
}

func (f *fakeRouter) SetWeight(_ context.Context, w int) error {
	if f.onSet != nil {
		f.onSet(w)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.weights); n == 0 || f.weights[n-1] != w {
		f.weights = append(f.weights, w)
	}
	return nil
}

func (f *fakeRouter) history() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.weights)
}

func (f *fakeRouter) current() int {
	h := f.history()
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1]
}

const image = "127.0.0.1:5000/shop"

type harness struct {
	t      *testing.T
	ns     *server.Server
	bus    *bus.Bus
	kv     jetstream.KeyValue
	policy *policy.Store
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
}

func newHarness(t *testing.T, pause time.Duration) *harness {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	kv, err := b.EnsureKV(t.Context(), jetstream.KeyValueConfig{Bucket: Bucket, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("test.yaml", fmt.Appendf(nil, `version: 1
apps:
  - name: shop
    image: %s
    environment: prod
    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://127.0.0.1:2, canary: http://127.0.0.1:3}}
    canary: {steps: [5, 25, 50, 100]}
`, image))
	if err != nil {
		t.Fatal(err)
	}
	// Steps far shorter than any analysis interval keep these tests fast;
	// the policy would refuse them, the rollout engine does not care.
	pol.Apps[0].Canary.Pause = pause
	pub, priv, _ := ed25519.GenerateKey(nil)
	return &harness{t: t, ns: ns, bus: b, kv: kv, policy: policy.StoreOf(pol), pub: pub, priv: priv}
}

// manager starts a Manager named owner consuming through the durable
// "deployer", as the service does. stop kills it (no drain).
func (h *harness) manager(owner string, rt Router) (stop func()) {
	h.t.Helper()
	r := h.replica(owner, rt)
	return r.stop
}

// replica is one deployer process: its Manager and its consumer.
type replica struct {
	m        *Manager
	consumer *bus.Consumer
	stop     func()
}

func (h *harness) replica(owner string, rt Router) *replica {
	h.t.Helper()
	return h.replicaWith(rt, Options{Owner: owner})
}

// replicaWith is a replica with opts (the scanner key and a 2s lease are
// filled in).
func (h *harness) replicaWith(rt Router, opts Options) *replica {
	h.t.Helper()
	opts.ScannerKey, opts.Lease = h.pub, 2*time.Second
	m, err := NewManager(h.kv, h.bus, h.policy, map[string]Router{"shop": rt}, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := m.Start(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	c, err := h.bus.Consume(h.t.Context(), bus.ConsumerOptions{Durable: "deployer",
		FilterSubjects: []string{"rampart.scan.>", "rampart.anomaly.>"}, Backoff: []time.Duration{50 * time.Millisecond}}, m.Handle)
	if err != nil {
		h.t.Fatal(err)
	}
	var once sync.Once
	r := &replica{m: m, consumer: c, stop: func() { once.Do(func() { c.Stop(); m.Stop() }) }}
	h.t.Cleanup(r.stop)
	return r
}

func digest(n int) string { return "sha256:" + strings.Repeat(fmt.Sprintf("%02x", n), 32) }

func artifact(t *testing.T, n int) string {
	o, err := events.NewOCI(image, digest(n), "")
	if err != nil {
		t.Fatal(err)
	}
	return o.String()
}

// verdict publishes the scanner's verdict on artifact n: signed, with the
// verification summary a scanner attaches, or neither.
func (h *harness) verdict(id string, n int, outcome string, sign bool) {
	h.t.Helper()
	var att []json.RawMessage
	if sign {
		att = []json.RawMessage{h.summary(n, n, outcome == events.OutcomePass, h.priv, gate.Default().Digest())}
	}
	h.verdictWith(id, n, outcome, sign, att)
}

// summary is a verification summary about artifact subjectN naming
// artifact resourceN's purl, signed with key.
func (h *harness) summary(subjectN, resourceN int, passed bool, key ed25519.PrivateKey, policyDigest string) json.RawMessage {
	h.t.Helper()
	s, err := attest.NewSigner(key)
	if err != nil {
		h.t.Fatal(err)
	}
	raw, err := s.Summary(h.t.Context(), attest.Summary{Subject: attest.Subject{Name: image, Digest: digest(subjectN)},
		Verifier: "/rampart/scanner", ResourceURI: artifact(h.t, resourceN), Passed: passed, Time: time.Now(),
		PolicyURI: gate.DefaultURI, PolicyDigest: policyDigest})
	if err != nil {
		h.t.Fatal(err)
	}
	return raw
}

func (h *harness) verdictWith(id string, n int, outcome string, sign bool, att []json.RawMessage) {
	h.t.Helper()
	s := events.Scan{Target: artifact(h.t, n), TargetKind: "image", Environment: "prod", Outcome: outcome, Attestations: att}
	m := events.Meta{ID: id, Source: "/rampart/scanner", ChainID: "chain-" + id, App: "shop"}
	var ev cloudevents.Event
	var err error
	if sign {
		ev, err = events.SignScan(m, s, h.priv)
	} else {
		ev, err = events.NewScanFinished(m, s)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.bus.Publish(h.t.Context(), ev); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) anomaly(id, target, rolloutID string, n int) {
	h.t.Helper()
	ev, err := events.NewAnomaly(events.Meta{ID: id, Source: "/rampart/watcher", App: "shop"}, events.Anomaly{
		Target: target, App: "shop", Environment: "prod", ArtifactID: artifact(h.t, n), RolloutID: rolloutID,
		Rule: "http-5xx-ratio", Origin: "test", Description: "5xx ratio 4% > 1%", DetectedAt: time.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.bus.Publish(h.t.Context(), ev); err != nil {
		h.t.Fatal(err)
	}
}

// stored returns the messages on subject pattern, in stream order.
func (h *harness) stored(pattern string) []jetstream.Msg {
	h.t.Helper()
	cons, err := h.bus.JetStream().OrderedConsumer(h.t.Context(), bus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{pattern}})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			h.t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			out = append(out, msg)
		}
		if n == 0 {
			return out
		}
	}
}

// published returns the events on subject pattern, in stream order.
func (h *harness) published(pattern string) []cloudevents.Event {
	h.t.Helper()
	var out []cloudevents.Event
	for _, msg := range h.stored(pattern) {
		ev, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// deadLetterReasons maps the id of each event the deployer dead-lettered to
// the reason the bus recorded.
func (h *harness) deadLetterReasons() map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, msg := range h.stored(bus.DeadLetterSubject("deployer")) {
		out[msg.Headers().Get("ce-id")] = msg.Headers().Get(bus.HeaderDeadLetterReason)
	}
	return out
}

func (h *harness) waitFor(what string, f func() error) {
	h.t.Helper()
	natstest.CheckFor(h.t, 15*time.Second, 10*time.Millisecond, func() error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

func (h *harness) waitPhase(id string, want Phase) *Rollout {
	var r *Rollout
	h.waitFor("rollout "+id+" "+string(want), func() error {
		e, err := newStore(h.kv).rollout(h.t.Context(), id)
		if err != nil {
			return err
		}
		r = &e.Value
		if r.Phase != want {
			return fmt.Errorf("phase %s", r.Phase)
		}
		return nil
	})
	return r
}

// waitWeight waits until rt's canary weight is w.
func (h *harness) waitWeight(rt *fakeRouter, w int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("canary at %d%%", w), func() error {
		if rt.current() != w {
			return fmt.Errorf("weights %v", rt.history())
		}
		return nil
	})
}

// waitEvents waits until n events are published on subject pattern.
func (h *harness) waitEvents(pattern string, n int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d events on %s", n, pattern), func() error {
		if got := len(h.published(pattern)); got != n {
			return fmt.Errorf("%d events", got)
		}
		return nil
	})
}

// canary starts a replica named owner and a rollout of scan-1 on it, and
// waits until the canary has 5%.
func (h *harness) canary(owner string, rt *fakeRouter) (*replica, string) {
	h.t.Helper()
	r := h.replica(owner, rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.waitWeight(rt, 5)
	return r, rolloutID("shop", "scan-1")
}

// app reads the application's state.
func (h *harness) app(name string) *AppState {
	h.t.Helper()
	e, err := newStore(h.kv).app(h.t.Context(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return &e.Value
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

func TestRolloutStepsToCompletion(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	rt := &fakeRouter{}
	h.manager("d1", rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	id := rolloutID("shop", "scan-1")
	h.waitPhase(id, PhaseCompleted)
	h.waitEvents("rampart.release.shop", 1)
	if got := rt.history(); !slices.Equal(got, []int{5, 25, 50, 100, 0}) {
		t.Fatalf("weights %v, want 5 25 50 100 then 0 (the stable slot now runs the release)", got)
	}
	var weights []int
	for _, ev := range h.published("rampart.canarystep.shop") {
		s, err := events.CanaryStepOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		weights = append(weights, s.Weight)
		if events.ChainID(ev) != "chain-scan-1" {
			t.Fatalf("step event lost the release's chain: %q", events.ChainID(ev))
		}
	}
	if !slices.Equal(weights, []int{5, 25, 50, 100}) {
		t.Fatalf("canary-step events %v", weights)
	}
	if p := h.published("rampart.promote.shop"); len(p) != 1 {
		t.Fatalf("%d promote events", len(p))
	}
	state := h.app("shop")
	if state.Active != "" || state.Live() == nil || state.Live().Artifact != artifact(t, 1) {
		t.Fatalf("app state %+v", state)
	}
}

func TestUnsignedAndForgedVerdictsAreRefused(t *testing.T) {
	h := newHarness(t, time.Hour)
	rt := &fakeRouter{}
	h.manager("d1", rt)
	h.verdict("unsigned", 1, events.OutcomePass, false)
	other := *h
	other.pub, other.priv, _ = ed25519.GenerateKey(nil)
	other.verdict("forged", 2, events.OutcomePass, true)
	h.waitFor("both verdicts dead-lettered with the reason", func() error {
		dl := h.published(bus.DeadLetterSubject("deployer"))
		if len(dl) != 2 {
			return fmt.Errorf("%d dead letters", len(dl))
		}
		return nil
	})
	if len(rt.history()) != 0 || len(h.published("rampart.promote.>")) != 0 {
		t.Fatalf("a refused verdict moved traffic: %v", rt.history())
	}
}

// TestForgedAttestationsAreRefused sends verdicts whose event signature is
// good but whose verification summary is missing, forged or about something
// else: none moves traffic, each is dead-lettered naming why; a verdict with
// a good summary then promotes.
func TestForgedAttestationsAreRefused(t *testing.T) {
	h := newHarness(t, time.Hour)
	rt := &fakeRouter{}
	h.manager("d1", rt)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	def := gate.Default().Digest()
	cases := []struct {
		id   string
		att  []json.RawMessage
		want string
	}{
		{"no-attestation", nil, "carries no verification summary"},
		{"other-digest", []json.RawMessage{h.summary(9, 2, true, h.priv, def)}, "subject does not match"},
		{"other-purl", []json.RawMessage{h.summary(3, 9, true, h.priv, def)}, "subject does not match"},
		{"other-key", []json.RawMessage{h.summary(4, 4, true, otherKey, def)}, "signature does not verify"},
		{"failed", []json.RawMessage{h.summary(5, 5, false, h.priv, def)}, "not PASSED"},
		{"unknown-policy", []json.RawMessage{h.summary(6, 6, true, h.priv, strings.Repeat("ab", 32))}, "not a known policy"},
		{"garbage", []json.RawMessage{json.RawMessage(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`)}, "carries no verification summary"},
	}
	for i, c := range cases {
		h.verdictWith(c.id, i+1, events.OutcomePass, true, c.att)
	}
	h.waitFor("every forged verdict dead-lettered", func() error {
		dl := h.published(bus.DeadLetterSubject("deployer"))
		if len(dl) != len(cases) {
			return fmt.Errorf("%d dead letters of %d", len(dl), len(cases))
		}
		return nil
	})
	reasons := h.deadLetterReasons()
	for _, c := range cases {
		if !strings.Contains(reasons[c.id], c.want) {
			t.Errorf("%s refused with %q, want %q", c.id, reasons[c.id], c.want)
		}
	}
	if len(rt.history()) != 0 || len(h.published("rampart.promote.>")) != 0 {
		t.Fatalf("a refused verdict moved traffic: %v", rt.history())
	}
	h.verdict("good", 20, events.OutcomePass, true)
	h.waitFor("the attested verdict promoted", func() error {
		if len(h.published("rampart.promote.>")) != 1 {
			return errors.New("not promoted yet")
		}
		return nil
	})
}

func TestAnomalyRollsBackOnce(t *testing.T) {
	h := newHarness(t, time.Hour) // hold at 5%
	rt := &fakeRouter{}
	h.manager("d1", rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	id := rolloutID("shop", "scan-1")
	h.waitWeight(rt, 5)
	for i := range 20 {
		h.anomaly(fmt.Sprintf("anomaly-%d", i), events.TargetCanary, id, 1)
	}
	r := h.waitPhase(id, PhaseRolledBack)
	if r.TrafficAtAbort != 5 || r.Trigger == nil || r.Trigger.Rule != "http-5xx-ratio" {
		t.Fatalf("rollback record %+v", r)
	}
	h.waitEvents("rampart.rollback.shop", 1)
	// Every anomaly was handled (acked) and still only one rollback exists.
	h.waitFor("all anomalies handled", func() error {
		c, err := h.bus.JetStream().Consumer(t.Context(), bus.StreamName, "deployer")
		if err != nil {
			return err
		}
		info, err := c.Info(t.Context())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if n := len(h.published("rampart.rollback.shop")); n != 1 {
		t.Fatalf("%d rollback events after 20 anomalies", n)
	}
	if rt.current() != 0 {
		t.Fatalf("weight %d after rollback", rt.current())
	}
	ev := h.published("rampart.rollback.shop")[0]
	rb, err := events.RollbackOf(ev)
	if err != nil || rb.TrafficAtAbort != 5 || rb.From != artifact(t, 1) {
		t.Fatalf("rollback event %+v %v", rb, err)
	}
}

// A deployer killed in the middle of a canary and started again resumes the
// rollout; an anomaly published while it was down still rolls back once.
func TestRestartResumesAndRollsBackOnce(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond)
	rt1 := &fakeRouter{}
	stop := h.manager("deployer-0", rt1)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	id := rolloutID("shop", "scan-1")
	h.waitFor("step 25%", func() error {
		if rt1.current() != 25 {
			return fmt.Errorf("weight %d", rt1.current())
		}
		return nil
	})
	stop()

	// A new process (same name, as a restarted pod keeps its name) with a
	// fresh router, which starts at 0.
	rt2 := &fakeRouter{}
	stop = h.manager("deployer-0", rt2)
	h.waitFor("resumed at 50%", func() error {
		if rt2.current() < 50 {
			return fmt.Errorf("weights %v", rt2.history())
		}
		return nil
	})
	if h2 := rt2.history(); h2[0] != 25 {
		t.Fatalf("the restarted deployer did not first restore the recorded weight 25: %v", h2)
	}
	stop()

	// Down again; anomalies arrive while nothing runs.
	h.anomaly("anomaly-down", events.TargetCanary, id, 1)
	h.anomaly("anomaly-down-again", events.TargetCanary, id, 1)
	rt3 := &fakeRouter{}
	h.manager("deployer-0", rt3)
	h.waitPhase(id, PhaseRolledBack)
	h.waitEvents("rampart.rollback.shop", 1)
	if rt3.current() != 0 {
		t.Fatalf("weight %d", rt3.current())
	}
}

// Two replicas share the consumer and the state; only one drives a rollout.
func TestReplicasNeverBothDrive(t *testing.T) {
	h := newHarness(t, 30*time.Millisecond)
	a, b := &fakeRouter{}, &fakeRouter{}
	h.manager("replica-a", a)
	h.manager("replica-b", b)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.waitPhase(rolloutID("shop", "scan-1"), PhaseCompleted)
	ha, hb := a.history(), b.history()
	if (len(ha) == 0) == (len(hb) == 0) {
		t.Fatalf("both or neither replica moved traffic: a=%v b=%v", ha, hb)
	}
	if n := len(h.published("rampart.canarystep.shop")); n != 4 {
		t.Fatalf("%d step events, want 4", n)
	}
}

func TestBlockedVerdictHaltsInflightCandidate(t *testing.T) {
	h := newHarness(t, time.Hour)
	rt := &fakeRouter{}
	h.manager("d1", rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	id := rolloutID("shop", "scan-1")
	h.waitWeight(rt, 5)
	h.verdict("rescan-1", 1, events.OutcomeBlocked, true)
	r := h.waitPhase(id, PhaseRolledBack)
	if r.Trigger == nil || r.Trigger.Origin != "scanner" || rt.current() != 0 {
		t.Fatalf("halt: %+v weight %d", r, rt.current())
	}
}

func TestQueuedCandidateFollowsActive(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	rt := &fakeRouter{}
	h.manager("d1", rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.verdict("scan-2", 2, events.OutcomePass, true)
	r2 := h.waitPhase(rolloutID("shop", "scan-2"), PhaseCompleted)
	if r2.Stable != artifact(t, 1) {
		t.Fatalf("the second rollout measured against %q, want the first release", r2.Stable)
	}
	if n := len(h.published("rampart.release.shop")); n != 2 {
		t.Fatalf("%d releases", n)
	}
}

// A new Critical CVE in the live digest rolls back to the previous clean
// release; with no clean release to return to, traffic stays.
func TestLiveAnomalyRollsBackToPreviousCleanRelease(t *testing.T) {
	h := newHarness(t, 10*time.Millisecond)
	rt := &fakeRouter{}
	h.manager("d1", rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.waitPhase(rolloutID("shop", "scan-1"), PhaseCompleted)
	h.verdict("scan-2", 2, events.OutcomePass, true)
	h.waitPhase(rolloutID("shop", "scan-2"), PhaseCompleted)
	// The rollout is recorded complete before the finish step records its
	// release: an anomaly about release 2 before that is about no live
	// release, and rightly changes nothing.
	h.waitFor("release 2 live", func() error {
		if l := h.app("shop").Live(); l == nil || l.Artifact != artifact(t, 2) {
			return fmt.Errorf("live is %+v", l)
		}
		return nil
	})

	h.anomaly("cve-on-2", events.TargetRelease, "", 2)
	h.waitFor("rollback to release 1", func() error {
		rbs := h.published("rampart.rollback.shop")
		if len(rbs) != 1 {
			return fmt.Errorf("%d rollbacks", len(rbs))
		}
		rb, err := events.RollbackOf(rbs[0])
		if err != nil {
			return err
		}
		if rb.ArtifactID != artifact(t, 1) || rb.From != artifact(t, 2) {
			return fmt.Errorf("rolled back from %s to %s", rb.From, rb.ArtifactID)
		}
		return nil
	})
	state := h.app("shop")
	if state.Live().Artifact != artifact(t, 1) {
		t.Fatalf("live is %s", state.Live().Artifact)
	}

	// Now release 1 is found vulnerable too: nothing clean is left.
	h.anomaly("cve-on-1", events.TargetRelease, "", 1)
	h.waitFor("anomaly handled", func() error {
		s := h.app("shop")
		if !s.Live().Vulnerable {
			return fmt.Errorf("live release not marked vulnerable")
		}
		return nil
	})
	if n := len(h.published("rampart.rollback.shop")); n != 1 {
		t.Fatalf("%d rollbacks; with no clean release traffic must stay", n)
	}
}

// The instant part comes first: when the router is told weight 0, the
// rollback is not recorded yet.
func TestRollbackCutsTrafficBeforeRecording(t *testing.T) {
	h := newHarness(t, time.Hour)
	id := rolloutID("shop", "scan-1")
	var mu sync.Mutex
	var phaseAtCut Phase
	rt := &fakeRouter{}
	rt.onSet = func(w int) {
		mu.Lock()
		defer mu.Unlock()
		if w != 0 || phaseAtCut != "" {
			return
		}
		e, err := newStore(h.kv).rollout(context.Background(), id)
		if err == nil {
			phaseAtCut = e.Value.Phase
		}
	}
	h.manager("d1", rt)
	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.waitWeight(rt, 5)
	h.anomaly("anomaly-1", events.TargetCanary, id, 1)
	h.waitPhase(id, PhaseRolledBack)
	mu.Lock()
	defer mu.Unlock()
	if phaseAtCut != PhaseProgressing {
		t.Fatalf("the rollout was %q when the weight went to 0, want it still progressing (weight 0 first, then the record)", phaseAtCut)
	}
}

// A replica that does not own the application leaves what it receives
// (an operator's action, an anomaly) for the owner, which applies it; the
// other replica never moves traffic.
func TestRequestsOnAnotherReplicaGoToTheOwner(t *testing.T) {
	h := newHarness(t, time.Hour)
	ra, rb := &fakeRouter{}, &fakeRouter{}
	a, id := h.canary("replica-a", ra)
	a.consumer.Stop() // from now on only replica b receives events
	b := h.replica("replica-b", rb)

	r, err := b.m.Act(t.Context(), id, adminapi.ActionPause, "looking", adminapi.OperatorActor("op", "api"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != PhasePaused || r.Reason != "paused by operator: looking" {
		t.Fatalf("pause through replica b: %+v", r)
	}

	h.anomaly("anomaly-1", events.TargetCanary, id, 1)
	r = *h.waitPhase(id, PhaseRolledBack)
	if r.TrafficAtAbort != 5 || r.AnomalyID != "anomaly-1" {
		t.Fatalf("rollback record %+v", r)
	}
	h.waitEvents("rampart.rollback.shop", 1)
	if ra.current() != 0 {
		t.Fatalf("owner's weight %d after rollback", ra.current())
	}
	if hb := rb.history(); len(hb) != 0 {
		t.Fatalf("replica b moved traffic it does not own: %v", hb)
	}
	if s := h.app("shop"); len(s.Inbox) != 0 || s.Active != "" {
		t.Fatalf("application state after the rollback: %+v", s)
	}
}

// Every operator action the owner applies is announced with who asked for it
// and the phases around it, so that the ledger records it; a refused action
// is not announced.
func TestOperatorActionsAreAnnouncedWithTheirActor(t *testing.T) {
	h := newHarness(t, time.Hour)
	a, id := h.canary("replica-a", &fakeRouter{})
	api, console := adminapi.OperatorActor("op", "api"), adminapi.OperatorActor("op", "console")
	for _, act := range []struct {
		action adminapi.Action
		by     adminapi.Actor
		phase  Phase
	}{
		{adminapi.ActionPause, api, PhasePaused},
		{adminapi.ActionResume, console, PhaseProgressing},
		{adminapi.ActionPromote, api, PhaseProgressing},
		{adminapi.ActionAbort, api, PhaseRolledBack},
	} {
		r, err := a.m.Act(t.Context(), id, act.action, "drill "+string(act.action), act.by)
		if err != nil || r.Phase != act.phase {
			t.Fatalf("%s: %v, phase %q, want %q", act.action, err, r.Phase, act.phase)
		}
	}
	if _, err := a.m.Act(t.Context(), id, adminapi.ActionPause, "too late", api); !errors.Is(err, ErrFinished) {
		t.Fatalf("pause of a rolled back rollout: %v", err)
	}
	h.waitEvents("rampart.intervention.shop", 4)
	want := []string{
		"pause api progressing paused drill pause",
		"resume console paused progressing drill resume",
		"promote api progressing progressing drill promote",
		"abort api progressing rolledback drill abort",
	}
	r := h.waitPhase(id, PhaseRolledBack)
	for i, ev := range h.published("rampart.intervention.shop") {
		iv, err := events.InterventionOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join([]string{iv.Action, iv.Via, iv.PhaseBefore, iv.PhaseAfter, iv.Reason}, " "); got != want[i] {
			t.Errorf("intervention %d: %q, want %q", i, got, want[i])
		}
		if iv.Actor != api.Name || iv.RolloutID != id || iv.App != "shop" || iv.ArtifactID != r.Artifact || iv.AppliedAt.Before(iv.RequestedAt) {
			t.Errorf("intervention %d: %+v", i, iv)
		}
		if events.ChainID(ev) != r.ChainID || r.ChainID == "" {
			t.Errorf("intervention %d in chain %q, want the rollout's %q", i, events.ChainID(ev), r.ChainID)
		}
	}
}

// When the owner dies, another replica takes the application over once the
// lease has run out: it restores the recorded weight on its router and acts
// on what comes next.
func TestReplicaTakesOverWhenTheLeaseRunsOut(t *testing.T) {
	h := newHarness(t, time.Hour)
	ra, rb := &fakeRouter{}, &fakeRouter{}
	a, id := h.canary("replica-a", ra)
	h.replica("replica-b", rb)
	a.stop()
	h.waitWeight(rb, 5) // within the 2 s lease and a bit
	if s := h.app("shop"); s.Lease.Holder != "replica-b" {
		t.Fatalf("lease %+v after the take-over", s.Lease)
	}
	h.anomaly("anomaly-1", events.TargetCanary, id, 1)
	h.waitPhase(id, PhaseRolledBack)
	h.waitEvents("rampart.rollback.shop", 1)
	if rb.current() != 0 {
		t.Fatalf("weights %v on the new owner", rb.history())
	}
}
