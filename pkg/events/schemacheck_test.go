package events

import (
	"encoding/json"
	"slices"
	"testing"
)

// goldenData is the type and data of each golden event.
func goldenData(t testing.TB) (types []string, data [][]byte) {
	t.Helper()
	for _, m := range goldenMsgs(t) {
		types = append(types, m.Header.Get("ce-type"))
		data = append(data, m.Data)
	}
	return types, data
}

// TestQuickCheckTakesEventData checks that the quick check, not the
// validator, accepts the events Rampart writes.
func TestQuickCheckTakesEventData(t *testing.T) {
	s, err := DefaultSchemas()
	if err != nil {
		t.Fatal(err)
	}
	types, data := goldenData(t)
	for i, typ := range types {
		doc, err := decodeTree(data[i])
		if err != nil {
			t.Fatal(err)
		}
		if q := quickCheck(s.byType[typ], doc, 0); q != valid {
			t.Errorf("%s: quick check %d, want valid", typ, q)
		}
	}
}

// FuzzQuickCheck changes golden events in place (a value replaced, a
// property removed or added) and holds quickCheck's verdicts to the
// validator's: valid only where the validator finds nothing, invalid only
// where it finds something.
func FuzzQuickCheck(f *testing.F) {
	types, data := goldenData(f)
	s, err := DefaultSchemas()
	if err != nil {
		f.Fatal(err)
	}
	for i := range types {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{0, 3, 1, 2})
		f.Add(uint8(i), []byte{1, 0, 0, 4, 2, 1, 5})
	}
	f.Fuzz(func(t *testing.T, which uint8, edits []byte) {
		i := int(which) % len(types)
		sch := s.byType[types[i]]
		doc, err := decodeTree(data[i])
		if err != nil {
			t.Fatal(err)
		}
		doc = mutate(doc, edits)
		q := quickCheck(sch, doc, 0)
		verr := sch.Validate(doc)
		switch {
		case q == valid && verr != nil:
			t.Fatalf("%s %v: quick check valid, validator: %v", types[i], edits, verr)
		case q == invalid && verr == nil:
			t.Fatalf("%s %v: quick check invalid, validator valid", types[i], edits)
		}
		if q := quickCheck(s.custom, doc, 0); q != unsure && (q == valid) != (s.custom.Validate(doc) == nil) {
			t.Fatalf("custom schema %v: quick check %d disagrees with the validator", edits, q)
		}
	})
}

// replacements are the values mutate puts in place of another.
var replacements = []any{
	nil, true, false, json.Number("0"), json.Number("-1.5e3"), json.Number("7"),
	"", "x", "PATH", "0.5.1", "/rampart/test", "not a uri: \x7f", "http://[::1", "2026-11-26T12:00:00Z", "2026-13-45T25:61:00Z",
	"dev.cdevents.change.merged.0.3.0", "ÿ", map[string]any{}, []any{}, map[string]any{"id": "x"}, []any{map[string]any{"linkType": "PATH"}},
}

// mutate applies edits to doc: each edit is a path of child choices ended
// by an operation byte.
func mutate(doc any, edits []byte) any {
	for len(edits) >= 2 {
		depth := int(edits[0]) % 5
		edits = edits[1:]
		path := edits[:min(depth, len(edits))]
		edits = edits[len(path):]
		if len(edits) == 0 {
			break
		}
		op := edits[0]
		edits = edits[1:]
		doc = edit(doc, path, op)
	}
	return doc
}

func edit(v any, path []byte, op byte) any {
	if len(path) == 0 {
		switch m := v.(type) {
		case map[string]any:
			if op%4 == 0 && len(m) > 0 { // remove a property
				keys := sortedKeys(m)
				delete(m, keys[int(op/4)%len(keys)])
				return m
			}
			if op%4 == 1 { // add one
				m["extra"] = clone(replacements[int(op/4)%len(replacements)])
				return m
			}
		case []any:
			if op%4 == 0 && len(v.([]any)) > 0 {
				return m[1:]
			}
		}
		return clone(replacements[int(op)%len(replacements)])
	}
	switch c := v.(type) {
	case map[string]any:
		if len(c) == 0 {
			return v
		}
		keys := sortedKeys(c)
		k := keys[int(path[0])%len(keys)]
		c[k] = edit(c[k], path[1:], op)
	case []any:
		if len(c) == 0 {
			return v
		}
		j := int(path[0]) % len(c)
		c[j] = edit(c[j], path[1:], op)
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clone copies the replacement values that are maps or slices, so that a
// later edit does not change the palette.
func clone(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range c {
			m[k] = clone(e)
		}
		return m
	case []any:
		a := make([]any, len(c))
		for i, e := range c {
			a[i] = clone(e)
		}
		return a
	}
	return v
}
