package traffic_test

import (
	"errors"
	"testing"

	"github.com/rampartci/rampart/services/deployer/internal/traffic"
)

func TestValidateWeight(t *testing.T) {
	for _, tc := range []struct {
		weight int
		ok     bool
	}{
		{-1, false}, {0, true}, {1, true}, {5, true}, {50, true}, {99, true}, {100, true}, {101, false},
		{-1 << 31, false}, {1 << 31, false},
	} {
		err := traffic.ValidateWeight(tc.weight)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateWeight(%d) = %v, want ok=%v", tc.weight, err, tc.ok)
		}
		if err != nil && !errors.Is(err, traffic.ErrInvalidWeight) {
			t.Errorf("ValidateWeight(%d) = %v, want it to wrap ErrInvalidWeight", tc.weight, err)
		}
	}
}

// FuzzValidateWeight checks the rule itself: exactly 0..100 are accepted,
// and every rejection wraps ErrInvalidWeight.
func FuzzValidateWeight(f *testing.F) {
	for _, w := range []int{-1, 0, 5, 100, 101} {
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, w int) {
		err := traffic.ValidateWeight(w)
		if want := w >= 0 && w <= 100; (err == nil) != want {
			t.Fatalf("ValidateWeight(%d) = %v, want ok=%v", w, err, want)
		}
		if err != nil && !errors.Is(err, traffic.ErrInvalidWeight) {
			t.Fatalf("ValidateWeight(%d) = %v does not wrap ErrInvalidWeight", w, err)
		}
	})
}
