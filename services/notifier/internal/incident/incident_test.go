package incident

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	b := natstest.Bus(t, natstest.Server(t, ""))
	kv, err := b.EnsureKV(t.Context(), KVConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	return NewStore(kv, time.Minute, c.now), c
}

func TestOneClaimWins(t *testing.T) {
	s, _ := newStore(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := s.Claim(t.Context(), "r-1", "ev-1", fmt.Sprintf("replica-%d", i))
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, ErrHeld):
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if won.Load() != 1 {
		t.Fatalf("%d claims won, want exactly 1", won.Load())
	}
}

func TestClaimLifecycle(t *testing.T) {
	ctx := t.Context()
	s, clk := newStore(t)
	a, err := s.Claim(ctx, "r-1", "ev-1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "r-1", "ev-2", "b"); !errors.Is(err, ErrHeld) {
		t.Fatalf("second claim: %v, want ErrHeld", err)
	}
	// The holder may claim again (a redelivery to the same instance).
	if _, err := s.Claim(ctx, "r-1", "ev-1", "a"); err != nil {
		t.Fatalf("holder re-claim: %v", err)
	}
	// a's claim object is now stale: the re-claim wrote a new revision.
	if err := a.Update(ctx, func(i *Incident) { i.DedupKey = "x" }); !errors.Is(err, ErrLost) {
		t.Fatalf("update of a superseded claim: %v, want ErrLost", err)
	}

	a, err = s.Claim(ctx, "r-1", "ev-1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, func(i *Incident) { i.PagedAt, i.DedupKey = clk.now(), "r-1" }); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "slack: HTTP 503"); err != nil {
		t.Fatal(err)
	}
	// Released: another replica takes it at once and sees what was done.
	b, err := s.Claim(ctx, "r-1", "ev-1", "b")
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	if b.Incident.PagedAt.IsZero() || b.Incident.LastError != "slack: HTTP 503" || b.Incident.RollbackEventID != "ev-1" {
		t.Fatalf("incident after release = %+v", b.Incident)
	}

	// b crashes while holding it: after the lease, c takes over.
	if _, err := s.Claim(ctx, "r-1", "ev-1", "c"); !errors.Is(err, ErrHeld) {
		t.Fatalf("claim within lease: %v, want ErrHeld", err)
	}
	clk.add(2 * time.Minute)
	c, err := s.Claim(ctx, "r-1", "ev-1", "c")
	if err != nil {
		t.Fatalf("claim after lease: %v", err)
	}
	if err := b.Update(ctx, func(*Incident) {}); !errors.Is(err, ErrLost) {
		t.Fatalf("update by the crashed holder: %v, want ErrLost", err)
	}
	if err := c.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "r-1", "ev-3", "d"); !errors.Is(err, ErrCompleted) {
		t.Fatalf("claim of completed incident: %v, want ErrCompleted", err)
	}
	got, err := s.Get(ctx, "r-1")
	if err != nil || got == nil || got.CompletedAt.IsZero() || got.Holder != "" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if none, err := s.Get(ctx, "r-2"); none != nil || err != nil {
		t.Fatalf("Get of unknown rollout = %+v, %v", none, err)
	}
}
