package local

import (
	"testing"

	"github.com/rampartci/rampart/pkg/policy"
)

// FuzzChooseIsExact checks the chooser's promise from any point in its
// window: of 100 consecutive requests at weight w, exactly w go to
// the canary, and no two canary requests are closer than 100/w apart
// (rounded down), so a small canary's share is spread out, not bunched.
func FuzzChooseIsExact(f *testing.F) {
	for _, seed := range []struct {
		w     uint8
		start uint64
	}{{0, 0}, {1, 0}, {5, 17}, {50, 99}, {99, 1 << 63}, {100, 3}, {33, ^uint64(0) - 10}} {
		f.Add(seed.w, seed.start)
	}
	r, err := New("shop", policy.LocalRouter{Stable: "http://s", Canary: "http://c"}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, w uint8, start uint64) {
		weight := int(w) % 101
		rt := &route{weight: weight, stable: r.route.Load().stable, canary: r.route.Load().canary}
		r.seq.Store(start % 100)
		canaries, last := 0, -1
		for i := range 100 {
			if r.choose(rt) != rt.canary {
				continue
			}
			canaries++
			if weight > 0 && last >= 0 && i-last < 100/weight {
				t.Fatalf("weight %d from %d: canary requests %d and %d are closer than %d", weight, start, last, i, 100/weight)
			}
			last = i
		}
		if canaries != weight {
			t.Fatalf("weight %d from %d: %d of 100 requests went to the canary", weight, start, canaries)
		}
	})
}
