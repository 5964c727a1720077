package gatewayapi

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ErrBackendNotFound is returned when no rule of the HTTPRoute lists both
// the stable and the canary backend: there is nothing the router could
// split, and nothing is changed.
var ErrBackendNotFound = errors.New("no HTTPRoute rule has both the stable and the canary backend")

// ErrDuplicateBackend is returned when a rule lists the stable or canary
// backend more than once, so that no pair of weights would give the split
// asked for; nothing is changed.
var ErrDuplicateBackend = errors.New("an HTTPRoute rule lists a backend more than once")

// split is where a rule's stable and canary backend refs are in its
// spec.rules[i].backendRefs.
type split struct {
	rule           int
	stable, canary map[string]any
}

// splits finds the rules of route that list both backends, by name
// (spec.rules[].backendRefs[].name). Rules with only one of them, and other
// backends in a matching rule, are left alone: weights are relative within
// a rule, so the canary gets w/(100+others) of a rule that also routes
// elsewhere.
func splits(route *unstructured.Unstructured, stable, canary string) ([]split, error) {
	rules, found, err := unstructured.NestedFieldNoCopy(route.Object, "spec", "rules")
	if err != nil {
		return nil, fmt.Errorf("read spec.rules: %w", err)
	}
	list, ok := rules.([]any)
	if !found || !ok {
		return nil, fmt.Errorf("spec.rules is missing or not a list: %w", ErrBackendNotFound)
	}
	var out []split
	seen := map[string]bool{}
	for i, r := range list {
		rule, ok := r.(map[string]any)
		if !ok {
			continue
		}
		refs, ok := rule["backendRefs"].([]any)
		if !ok {
			continue
		}
		s := split{rule: i}
		for _, ref := range refs {
			m, ok := ref.(map[string]any)
			if !ok {
				continue
			}
			name, _ := m["name"].(string)
			seen[name] = true
			var slot *map[string]any
			switch name {
			case stable:
				slot = &s.stable
			case canary:
				slot = &s.canary
			default:
				continue
			}
			if *slot != nil {
				return nil, fmt.Errorf("spec.rules[%d] lists backend %q twice: %w", i, name, ErrDuplicateBackend)
			}
			*slot = m
		}
		if s.stable != nil && s.canary != nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		var missing []string
		for _, n := range []string{stable, canary} {
			if !seen[n] {
				missing = append(missing, fmt.Sprintf("%q", n))
			}
		}
		what := "no rule lists both " + fmt.Sprintf("%q and %q", stable, canary)
		if len(missing) > 0 {
			what = "backend " + strings.Join(missing, " and ") + " is in no rule"
		}
		names := make([]string, 0, len(seen))
		for n := range seen {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%s (backends: %s): %w", what, strings.Join(names, ", "), ErrBackendNotFound)
	}
	return out, nil
}

// setWeights sets stable to 100-canaryPercent and canary to canaryPercent
// in every rule that lists both, in place. changed is false when every
// weight already had its value, so no update is needed.
func setWeights(route *unstructured.Unstructured, stable, canary string, canaryPercent int) (changed bool, err error) {
	ss, err := splits(route, stable, canary)
	if err != nil {
		return false, err
	}
	set := func(ref map[string]any, w int64) {
		if cur, ok := weightOf(ref); !ok || cur != w || !isInt64(ref["weight"]) {
			changed = true
		}
		// int64: the type unstructured content must hold for numbers.
		ref["weight"] = w
	}
	for _, s := range ss {
		set(s.stable, int64(100-canaryPercent))
		set(s.canary, int64(canaryPercent))
	}
	return changed, nil
}

// canaryWeight is the canary percent of the first rule that lists both
// backends: canary/(stable+canary), rounded, where an absent weight is
// Gateway API's default of 1 and two zero weights mean no canary traffic.
func canaryWeight(route *unstructured.Unstructured, stable, canary string) (int, error) {
	ss, err := splits(route, stable, canary)
	if err != nil {
		return 0, err
	}
	s, c := refWeight(ss[0].stable), refWeight(ss[0].canary)
	if s < 0 || c < 0 {
		return 0, fmt.Errorf("spec.rules[%d]: negative backend weight", ss[0].rule)
	}
	if s+c == 0 {
		return 0, nil
	}
	return int(math.Round(100 * c / (s + c))), nil
}

// refWeight is a backend ref's weight, 1 when unset (the Gateway API
// default).
func refWeight(ref map[string]any) float64 {
	w, ok := weightOf(ref)
	if !ok {
		return 1
	}
	return float64(w)
}

// weightOf reads a weight however the JSON decoder typed it.
func weightOf(ref map[string]any) (int64, bool) {
	switch v := ref["weight"].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, false
		}
		return int64(v), true
	}
	return 0, false
}

func isInt64(v any) bool { _, ok := v.(int64); return ok }
