package rollout

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// slots records what a Workload was asked to deploy where.
type slots struct {
	mu   sync.Mutex
	runs map[Slot]string
}

func (s *slots) Deploy(_ context.Context, _ policy.App, slot Slot, artifact string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs[slot] = artifact
	return nil
}

func (s *slots) in(slot Slot) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[slot]
}

// staged is a harness whose application goes through staging and preprod
// before its canary.
func staged(t *testing.T) (*harness, *slots) {
	h := newHarness(t, time.Hour)
	pol, err := policy.Parse("test.yaml", fmt.Appendf(nil, `version: 1
apps:
  - name: shop
    image: %s
    environment: prod
    router: {type: local, local: {listen: 127.0.0.1:1, stable: http://127.0.0.1:2, canary: http://127.0.0.1:3}}
    stages:
      - {name: staging, url: http://127.0.0.1:4, checks: {dast: {}}}
      - {name: preprod, environment: pre, url: http://127.0.0.1:5, checks: {contracts: [c.yaml]}}
      - {name: production}
`, image))
	if err != nil {
		t.Fatal(err)
	}
	pol.Apps[0].Canary.Pause = time.Hour
	h.policy = policy.StoreOf(pol)
	return h, &slots{runs: map[Slot]string{}}
}

// stageVerdict publishes a signed verdict about a stage.
func (h *harness) stageVerdict(id string, n int, env, kind, outcome string) {
	h.t.Helper()
	ev, err := events.SignScan(events.Meta{ID: id, Source: "/rampart/scanner", ChainID: "chain-" + id, App: "shop"},
		events.Scan{Target: artifact(h.t, n), TargetKind: kind, Environment: env, Outcome: outcome, Reason: "test"}, h.priv)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.bus.Publish(h.t.Context(), ev); err != nil {
		h.t.Fatal(err)
	}
}

// consumed waits until the deployer has handled every event so far.
func (h *harness) consumed() {
	h.t.Helper()
	h.waitFor("the deployer to handle every event", func() error {
		c, err := h.bus.JetStream().Consumer(h.t.Context(), bus.StreamName, "deployer")
		if err != nil {
			return err
		}
		info, err := c.Info(h.t.Context())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

func (h *harness) stageDeployments() []events.StageDeployment {
	var out []events.StageDeployment
	for _, ev := range h.published("rampart.stage.>") {
		s, err := events.StageDeploymentOf(ev)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// A candidate goes staging → preprod → production canary, each stage only
// on a passing verdict from the one before, each move announced.
func TestStagesBeforeProduction(t *testing.T) {
	h, w := staged(t)
	rt := &fakeRouter{}
	h.replicaWith(rt, Options{Owner: "d1", Workload: w})

	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.waitEvents("rampart.stage.>", 1)
	sd := h.stageDeployments()[0]
	if sd.Stage != "staging" || sd.Environment != "staging" || sd.URL != "http://127.0.0.1:4" || sd.ArtifactID != artifact(t, 1) || sd.VerdictID != "scan-1" {
		t.Fatalf("staging deployment = %+v", sd)
	}
	if w.in(StageSlot("staging")) != artifact(t, 1) {
		t.Fatalf("staging runs %q", w.in(StageSlot("staging")))
	}
	ev := h.published("rampart.stage.>")[0]
	if cd, _ := events.Parse(ev); cd.CausedBy() != "scan-1" || events.ChainID(ev) != "chain-scan-1" {
		t.Fatalf("stage deployment caused by %q, chain %q", cd.CausedBy(), events.ChainID(ev))
	}
	h.consumed()
	if len(rt.history()) != 0 || len(h.published("rampart.promote.>")) != 0 {
		t.Fatalf("the canary moved before staging was checked: %v", rt.history())
	}

	h.stageVerdict("staging-1", 1, "staging", verdictStage, events.OutcomePass)
	h.waitEvents("rampart.stage.>", 2)
	if sd := h.stageDeployments()[1]; sd.Stage != "preprod" || sd.Environment != "pre" || sd.VerdictID != "staging-1" {
		t.Fatalf("preprod deployment = %+v", sd)
	}
	h.consumed()
	if len(rt.history()) != 0 {
		t.Fatalf("the canary moved before preprod was checked: %v", rt.history())
	}

	h.stageVerdict("pre-1", 1, "pre", verdictStage, events.OutcomePass)
	h.waitWeight(rt, 5)
	promo := h.published("rampart.promote.>")
	if len(promo) != 1 {
		t.Fatalf("%d promotions", len(promo))
	}
	if cd, _ := events.Parse(promo[0]); cd.CausedBy() != "pre-1" {
		t.Fatalf("promotion caused by %q, want the last stage's verdict", cd.CausedBy())
	}
	if w.in(SlotCanary) != artifact(t, 1) {
		t.Fatalf("canary runs %q", w.in(SlotCanary))
	}
	h.waitPhase(rolloutID("shop", "pre-1"), PhaseProgressing)

	// A DAST report that passes promotes nothing; one that blocks, coming
	// late, halts the canary of its artifact.
	h.stageVerdict("zap-pass", 1, "staging", verdictDAST, events.OutcomePass)
	h.consumed()
	h.stageVerdict("zap-blocked", 1, "staging", verdictDAST, events.OutcomeBlocked)
	h.waitPhase(rolloutID("shop", "pre-1"), PhaseRolledBack)
	h.waitWeight(rt, 0)
}

// A candidate blocked in staging never reaches production, and a verdict
// about a candidate that is no longer in its stage promotes nothing.
func TestStoppedInStaging(t *testing.T) {
	h, w := staged(t)
	rt := &fakeRouter{}
	r := h.replicaWith(rt, Options{Owner: "d1", Workload: w})

	h.verdict("scan-2", 2, events.OutcomePass, true)
	h.waitEvents("rampart.stage.>", 1)
	h.stageVerdict("staging-2", 2, "staging", verdictStage, events.OutcomeBlocked)
	h.consumed()
	if n := len(h.stageDeployments()); n != 1 {
		t.Fatalf("a blocked candidate went on: %d stage deployments", n)
	}

	// v3 takes staging; v2's late pass is stale.
	h.verdict("scan-3", 3, events.OutcomePass, true)
	h.waitEvents("rampart.stage.>", 2)
	h.stageVerdict("staging-2-late", 2, "staging", verdictStage, events.OutcomePass)
	// An unsigned pass is refused as every verdict is.
	ev, _ := events.NewScanFinished(events.Meta{ID: "forged", Source: "/x", App: "shop"},
		events.Scan{Target: artifact(t, 3), TargetKind: verdictStage, Environment: "staging", Outcome: events.OutcomePass})
	if _, err := h.bus.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	// A verdict about an environment that is no stage of the app.
	h.stageVerdict("qa-3", 3, "qa", verdictStage, events.OutcomePass)
	h.consumed()
	if n := len(h.stageDeployments()); n != 2 || len(rt.history()) != 0 || len(h.published("rampart.promote.>")) != 0 {
		t.Fatalf("%d stage deployments, weights %v", n, rt.history())
	}
	if w.in(StageSlot("staging")) != artifact(t, 3) || w.in(SlotCanary) != "" {
		t.Fatalf("slots = %v", w.runs)
	}

	// The same verdict handled again (a redelivery after a failed ack)
	// deploys again and announces the same event, which the bus keeps once.
	again := Request{Kind: KindStage, ID: "scan-3", App: "shop", Stage: "staging", Received: time.Now(),
		Candidate: &Candidate{Artifact: artifact(t, 3), ScanEventID: "scan-3", ChainID: "chain-scan-3"}}
	if _, err := r.m.submit(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if n := len(h.stageDeployments()); n != 2 {
		t.Fatalf("%d stage deployments after a repeat, want 2", n)
	}
}

// stageRunner is a fakeWorkload that runs only the stages named.
type stageRunner struct {
	*fakeWorkload
	stages []string
}

func (s stageRunner) RunsStage(_ policy.App, stage string) bool {
	return slices.Contains(s.stages, stage)
}

// With a workload that reports progress, a stage is announced (and so
// checked) only once it serves the candidate; a newer candidate takes the
// stage over while the older one is still on its way; a candidate its
// stage never serves goes no further, and that is announced. A stage the workload does not run is
// announced at once, without a deploy.
func TestStageAnnouncedOnceItServesTheCandidate(t *testing.T) {
	h, _ := staged(t)
	rt := &fakeRouter{}
	w := newFakeWorkload(rt)
	h.replicaWith(rt, Options{Owner: "d1", Workloads: map[string]Workload{"shop": stageRunner{w, []string{"staging"}}}, WorkloadPoll: 10 * time.Millisecond})
	staging := StageSlot("staging")

	h.verdict("scan-1", 1, events.OutcomePass, true)
	w.waitPolls(h, staging, 5)
	if got := w.history(); !slices.Equal(got, []string{"deploy stage:staging " + artifact(t, 1)}) {
		t.Fatalf("calls %v", got)
	}
	if n := len(h.published("rampart.stage.>")); n != 0 {
		t.Fatalf("staging announced %d times before it serves the candidate", n)
	}
	// A newer candidate takes the stage over.
	h.verdict("scan-2", 2, events.OutcomePass, true)
	h.waitFor("the second candidate deployed", func() error {
		if s := h.app("shop").Staging; len(s) != 1 || s[0].Candidate.Artifact != artifact(t, 2) {
			return fmt.Errorf("staging %+v", s)
		}
		return nil
	})
	w.set(staging, artifact(t, 2))
	h.waitEvents("rampart.stage.>", 1)
	if sd := h.stageDeployments()[0]; sd.Stage != "staging" || sd.ArtifactID != artifact(t, 2) || sd.VerdictID != "scan-2" {
		t.Fatalf("staging deployment = %+v", sd)
	}
	h.waitFor("nothing left staging", func() error {
		if s := h.app("shop").Staging; len(s) != 0 {
			return fmt.Errorf("staging %+v", s)
		}
		return nil
	})

	// preprod is not the workload's: announced at once, never deployed.
	h.stageVerdict("staging-2", 2, "staging", verdictStage, events.OutcomePass)
	h.waitEvents("rampart.stage.>", 2)
	if sd := h.stageDeployments()[1]; sd.Stage != "preprod" || sd.ArtifactID != artifact(t, 2) {
		t.Fatalf("preprod deployment = %+v", sd)
	}
	if got := w.history(); len(got) != 2 || got[1] != "deploy stage:staging "+artifact(t, 2) {
		t.Fatalf("calls %v: preprod deployed by the workload", got)
	}

	// A candidate its stage never serves is dropped, and announced as failed
	// (the scanner checks nothing for it); the stage still runs the last one.
	w.mu.Lock()
	w.failed, w.failSlot = "progress deadline exceeded", staging
	w.mu.Unlock()
	h.verdict("scan-3", 3, events.OutcomePass, true)
	h.waitFor("the failed candidate dropped", func() error {
		if s := h.app("shop"); len(s.Staging) != 0 || !slices.Contains(w.history(), "deploy stage:staging "+artifact(t, 3)) {
			return fmt.Errorf("staging %+v, calls %v", s.Staging, w.history())
		}
		return nil
	})
	h.waitEvents("rampart.stage.>", 3)
	if sd := h.stageDeployments()[2]; sd.Stage != "staging" || sd.ArtifactID != artifact(t, 3) || sd.Failed != "progress deadline exceeded" {
		t.Fatalf("the failed stage deployment announced as %+v", sd)
	}
	h.consumed()
	if n := len(h.published("rampart.stage.>")); n != 3 {
		t.Fatalf("%d stage announcements, want the failure announced once", n)
	}
	if e, err := newStaged(h.kv).Get(t.Context(), stageKey("shop", "staging")); err != nil || e.Value.Artifact != artifact(t, 2) {
		t.Fatalf("staging recorded as running %+v (%v), want the candidate it serves", e, err)
	}
}
