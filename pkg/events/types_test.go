package events

import (
	"strings"
	"testing"
)

// FuzzSplitType holds SplitType to the plain reading of a type: split at
// the dots, the last three parts are the version.
func FuzzSplitType(f *testing.F) {
	for _, s := range []string{"dev.cdevents.change.merged.0.3.0", "a.1.2.3", "1.2.3", "....", "...", "a.b.c.d", "x.1.2.", "x.01.2.3a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typ string) {
		name, version, err := SplitType(typ)
		parts := strings.Split(typ, ".")
		ok := len(parts) >= 4
		for _, p := range parts[max(len(parts)-3, 0):] {
			ok = ok && p != "" && strings.Trim(p, "0123456789") == ""
		}
		switch {
		case ok != (err == nil):
			t.Fatalf("SplitType(%q) = %v, want ok %v", typ, err, ok)
		case ok && (name != strings.Join(parts[:len(parts)-3], ".") || version != strings.Join(parts[len(parts)-3:], ".")):
			t.Fatalf("SplitType(%q) = %q, %q", typ, name, version)
		}
	})
}

func TestCompatible(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"0.5.1", "0.5.0", true}, {"0.4.1", "0.5.1", false}, {"1.2.0", "1.0.0", true}, {"2.0.0", "1.0.0", false}, {"0.5", "0.5.1", true},
	} {
		if got := compatible(c.a, c.b); got != c.want {
			t.Errorf("compatible(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
