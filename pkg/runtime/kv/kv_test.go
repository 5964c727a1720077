package kv_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/kv"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }

type counter struct {
	N      int      `json:"n"`
	Writes []string `json:"writes,omitempty"`
}

func store(t *testing.T) (*kv.Store[counter], jetstream.KeyValue) {
	t.Helper()
	b := natstest.Bus(t, natstest.Server(t, ""))
	bucket, err := b.EnsureKV(t.Context(), jetstream.KeyValueConfig{Bucket: "TEST_KV", History: 5})
	if err != nil {
		t.Fatal(err)
	}
	return kv.New[counter](bucket), bucket
}

func TestPutIsCompareAndSwap(t *testing.T) {
	s, _ := store(t)
	ctx := t.Context()
	if _, err := s.Get(ctx, "a"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	first, err := s.Put(ctx, kv.Entry[counter]{Key: "a", Value: counter{N: 1}})
	if err != nil || first.Revision == 0 {
		t.Fatalf("create: %+v, %v", first, err)
	}
	if _, err := s.Put(ctx, kv.Entry[counter]{Key: "a", Value: counter{N: 9}}); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	second, err := s.Put(ctx, kv.Entry[counter]{Key: "a", Value: counter{N: 2}, Revision: first.Revision})
	if err != nil {
		t.Fatal(err)
	}
	// A writer still holding the first revision has lost the race.
	if _, err := s.Put(ctx, kv.Entry[counter]{Key: "a", Value: counter{N: 3}, Revision: first.Revision}); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	got, err := s.Get(ctx, "a")
	if err != nil || got.Value.N != 2 || got.Revision != second.Revision {
		t.Fatalf("Get = %+v, %v; want N=2 at revision %d", got, err, second.Revision)
	}
}

// Concurrent updates of one key never lose a write: each conflict re-reads
// and applies its change again.
func TestUpdateLosesNoWrite(t *testing.T) {
	s, _ := store(t)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				_, wrote, err := s.Update(t.Context(), "n", func(c *counter, _ bool) (bool, error) {
					c.N++
					return true, nil
				})
				if err != nil || !wrote {
					errs <- errors.Join(err, errors.New("not written"))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Get(t.Context(), "n")
	if err != nil || got.Value.N != writers*each {
		t.Fatalf("N = %d (%v), want %d", got.Value.N, err, writers*each)
	}
}

func TestUpdateDecides(t *testing.T) {
	s, _ := store(t)
	ctx := t.Context()
	_, wrote, err := s.Update(ctx, "k", func(c *counter, exists bool) (bool, error) {
		if exists {
			t.Error("a new key exists")
		}
		return false, nil
	})
	if err != nil || wrote {
		t.Fatalf("declined update: wrote=%v err=%v", wrote, err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("a declined update wrote: %v", err)
	}
	boom := errors.New("boom")
	if _, _, err := s.Update(ctx, "k", func(*counter, bool) (bool, error) { return true, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the change's error", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("a failed update wrote: %v", err)
	}
}

func TestListFilters(t *testing.T) {
	s, bucket := store(t)
	ctx := t.Context()
	for _, k := range []string{"app.a", "app.b", "rollout.1"} {
		if _, err := s.Put(ctx, kv.Entry[counter]{Key: k, Value: counter{N: len(k)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bucket.Delete(ctx, "app.b"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for e, err := range s.List(ctx, "app.>") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Key)
	}
	if len(keys) != 1 || keys[0] != "app.a" {
		t.Fatalf("List(app.>) = %v, want [app.a]", keys)
	}
	n := 0
	for range s.List(context.Background(), "") {
		n++
	}
	if n != 2 {
		t.Fatalf("List(\"\") yielded %d entries, want 2", n)
	}
}

func TestLease(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var l kv.Lease
	if l.HeldByOther("a", now) {
		t.Fatal("a free lease is held")
	}
	l.Take("a", now, time.Minute)
	if l.HeldByOther("a", now) || !l.HeldByOther("b", now) {
		t.Fatalf("lease %+v: holder a should hold it against b only", l)
	}
	if l.HeldByOther("b", now.Add(time.Minute)) {
		t.Fatal("an expired lease still holds")
	}
	l.Free()
	if l.HeldByOther("b", now) {
		t.Fatal("a freed lease still holds")
	}
}
