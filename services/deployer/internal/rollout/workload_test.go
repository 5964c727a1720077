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
)

// fakeWorkload records what the deployer asks of it; a slot becomes
// available when the test says so, and the test can make it fail.
type fakeWorkload struct {
	rt *fakeRouter

	mu        sync.Mutex
	calls     []string // "deploy canary <artifact>", "scale-down canary"
	available map[Slot]string
	polls     map[Slot]int
	failed    string
	failSlot  Slot // the slot failed applies to (default: the canary)
	// weightAtDeploy is the router's weight when each Deploy came.
	weightAtDeploy []int
}

func (f *fakeWorkload) Deploy(_ context.Context, _ policy.App, slot Slot, artifact string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("deploy %s %s", slot, artifact))
	f.weightAtDeploy = append(f.weightAtDeploy, f.rt.current())
	return nil
}

func (f *fakeWorkload) Progress(_ context.Context, _ policy.App, slot Slot, artifact string, since time.Time) (Progress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if since.IsZero() {
		return Progress{}, fmt.Errorf("progress asked before the deploy was recorded")
	}
	f.polls[slot]++
	if f.failed != "" && (slot == f.failSlot || f.failSlot == "" && slot == SlotCanary) {
		return Progress{Failed: f.failed}, nil
	}
	return Progress{Available: f.available[slot] == artifact, Waiting: "replicas"}, nil
}

func (f *fakeWorkload) ScaleDown(_ context.Context, _ policy.App, slot Slot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "scale-down "+string(slot))
	return nil
}

func (f *fakeWorkload) set(slot Slot, artifact string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.available[slot] = artifact
}

// waitPolls waits until slot has been polled n more times.
func (f *fakeWorkload) waitPolls(h *harness, slot Slot, n int) {
	f.mu.Lock()
	want := f.polls[slot] + n
	f.mu.Unlock()
	h.waitFor(fmt.Sprintf("%d polls of the %s slot", n, slot), func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.polls[slot] < want {
			return fmt.Errorf("%d polls", f.polls[slot])
		}
		return nil
	})
}

func (f *fakeWorkload) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func newFakeWorkload(rt *fakeRouter) *fakeWorkload {
	return &fakeWorkload{rt: rt, available: map[Slot]string{}, polls: map[Slot]int{}}
}

var (
	_ Awaiter = (*fakeWorkload)(nil)
	_ Scaler  = (*fakeWorkload)(nil)
)

// Traffic goes to the canary only once the canary serves the candidate,
// and leaves it only once the stable slot serves the release.
func TestWorkloadAvailabilityGatesTraffic(t *testing.T) {
	h := newHarness(t, 20*time.Millisecond)
	rt := &fakeRouter{}
	w := newFakeWorkload(rt)
	h.replicaWith(rt, Options{Owner: "d1", Workloads: map[string]Workload{"shop": w}, WorkloadPoll: 10 * time.Millisecond})
	h.verdict("scan-1", 1, events.OutcomePass, true)
	id := rolloutID("shop", "scan-1")
	h.waitFor("canary deployed", func() error {
		if len(w.history()) == 0 {
			return fmt.Errorf("no deploy yet")
		}
		return nil
	})
	h.waitEvents("rampart.promote.shop", 1)
	w.waitPolls(h, SlotCanary, 10) // the canary is not available: nothing may move
	if got := rt.history(); len(got) != 0 {
		t.Fatalf("traffic moved to a canary that is not available: %v", got)
	}
	w.set(SlotCanary, artifact(t, 1))
	h.waitFor("stable deployed", func() error {
		if !slices.Contains(w.history(), "deploy stable "+artifact(t, 1)) {
			return fmt.Errorf("calls %v", w.history())
		}
		return nil
	})
	w.waitPolls(h, SlotStable, 10)
	if got := rt.current(); got != 100 {
		t.Fatalf("traffic left the canary before the stable slot serves the release: %v", rt.history())
	}
	w.set(SlotStable, artifact(t, 1))
	r := h.waitPhase(id, PhaseCompleted)
	h.waitEvents("rampart.release.shop", 1)
	if got := rt.history(); !slices.Equal(got, []int{5, 25, 50, 100, 0}) {
		t.Fatalf("weights %v", got)
	}
	if r.CanaryDeployedAt.IsZero() || r.StableDeployedAt.IsZero() {
		t.Fatalf("deploys not recorded: %+v", r)
	}
	if got := w.history(); !slices.Equal(got, []string{"deploy canary " + artifact(t, 1), "deploy stable " + artifact(t, 1)}) {
		t.Fatalf("calls %v: each slot is deployed once", got)
	}
	if p := h.published("rampart.promote.shop"); len(p) != 1 {
		t.Fatalf("%d promote events", len(p))
	}
}

// A canary that never becomes available is rolled back without traffic,
// and scaled down after the policy's delay.
func TestWorkloadProgressDeadlineAborts(t *testing.T) {
	h := newHarness(t, time.Hour)
	pol := *h.policy.Current()
	pol.Apps = slices.Clone(pol.Apps)
	pol.Apps[0].Workload = &policy.Workload{Type: policy.WorkloadKubernetes, ScaleDownDelay: new(300 * time.Millisecond)}
	h.policy = policy.StoreOf(&pol)
	rt := &fakeRouter{}
	w := newFakeWorkload(rt)
	w.failed = "ProgressDeadlineExceeded: ReplicaSet shop-canary-5d8 has timed out progressing"
	h.replicaWith(rt, Options{Owner: "d1", Workloads: map[string]Workload{"shop": w}, WorkloadPoll: 10 * time.Millisecond})
	h.verdict("scan-1", 1, events.OutcomePass, true)
	id := rolloutID("shop", "scan-1")
	r := h.waitPhase(id, PhaseRolledBack)
	if r.Trigger == nil || r.Trigger.Rule != "progress-deadline" || r.TrafficAtAbort != 0 {
		t.Fatalf("rollback %+v trigger %+v", r, r.Trigger)
	}
	h.waitEvents("rampart.rollback.shop", 1)
	h.waitFor("canary scaled down", func() error {
		if !slices.Contains(w.history(), "scale-down canary") {
			return fmt.Errorf("calls %v", w.history())
		}
		return nil
	})
	scaled := time.Now()
	if d := scaled.Sub(r.FinishedAt); d < 300*time.Millisecond {
		t.Fatalf("scaled down %v after the rollback, before the 300ms delay", d)
	}
	h.waitFor("application idle", func() error {
		if a := h.app("shop"); a.Active != "" {
			return fmt.Errorf("active %s", a.Active)
		}
		return nil
	})
	if got := rt.history(); slices.ContainsFunc(got, func(w int) bool { return w > 0 }) {
		t.Fatalf("traffic went to a canary that never was available: %v", got)
	}
}

// After an anomaly the weight goes to 0 at once; the canary keeps its
// instances for the delay, then is scaled down, once.
func TestWorkloadRollbackScalesCanaryDown(t *testing.T) {
	h := newHarness(t, time.Hour)
	pol := *h.policy.Current()
	pol.Apps = slices.Clone(pol.Apps)
	pol.Apps[0].Workload = &policy.Workload{Type: policy.WorkloadKubernetes, ScaleDownDelay: new(200 * time.Millisecond)}
	h.policy = policy.StoreOf(&pol)
	rt := &fakeRouter{}
	w := newFakeWorkload(rt)
	w.set(SlotCanary, artifact(t, 1))
	h.replicaWith(rt, Options{Owner: "d1", Workloads: map[string]Workload{"shop": w}, WorkloadPoll: 10 * time.Millisecond})
	h.verdict("scan-1", 1, events.OutcomePass, true)
	h.waitWeight(rt, 5)
	id := rolloutID("shop", "scan-1")
	h.anomaly("anomaly-1", events.TargetCanary, id, 1)
	h.waitWeight(rt, 0)
	if slices.Contains(w.history(), "scale-down canary") {
		t.Fatal("the canary was scaled down before its traffic was taken away... or at once")
	}
	h.waitPhase(id, PhaseRolledBack)
	h.waitFor("canary scaled down", func() error {
		if !slices.Contains(w.history(), "scale-down canary") {
			return fmt.Errorf("calls %v", w.history())
		}
		return nil
	})
	h.waitFor("application idle", func() error {
		if a := h.app("shop"); a.Active != "" {
			return fmt.Errorf("active %s", a.Active)
		}
		return nil
	})
	if got := w.history(); !slices.Equal(got, []string{"deploy canary " + artifact(t, 1), "scale-down canary"}) {
		t.Fatalf("calls %v", got)
	}
}
