package verdict

import (
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/gate"
)

func TestSARIF(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../sarif/testdata/semgrep.sarif")
	if err != nil {
		t.Fatal(err)
	}
	u := Upload{Repository: "github.com/acme/shop", SHA: strings.Repeat("a", 40), App: "shop", SARIF: doc}
	o := Options{Key: key, Now: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)}
	ev, dec, err := SARIF(u, o)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Outcome != gate.Blocked || len(dec.Blocking) != 2 {
		t.Errorf("decision %v with %d blocking, want blocked by 2", dec.Outcome, len(dec.Blocking))
	}
	s, err := events.VerifyScan(ev, pub)
	if err != nil {
		t.Fatal(err)
	}
	if s.Target != u.SHA || s.TargetKind != "source" || s.Outcome != "blocked" || s.Counts["high"] != 2 || s.Counts["medium"] != 1 || s.Counts["low"] != 1 {
		t.Errorf("verdict %+v", s)
	}
	if !strings.HasPrefix(s.Reason, "SARIF from Semgrep OSS, ZAP; ") {
		t.Errorf("reason %q does not name the tools first", s.Reason)
	}
	again, _, err := SARIF(u, o)
	if err != nil || again.ID() != ev.ID() {
		t.Errorf("same upload: id %s, want %s (err %v)", again.ID(), ev.ID(), err)
	}
	u.SHA = strings.Repeat("b", 40)
	if other, _, _ := SARIF(u, o); other.ID() == ev.ID() {
		t.Error("another commit got the same event id")
	}
}

func TestSARIFRejects(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	for name, u := range map[string]Upload{
		"short sha":   {SHA: "abc", SARIF: []byte(`{"version":"2.1.0","runs":[]}`)},
		"not sarif":   {SHA: strings.Repeat("a", 40), SARIF: []byte(`<xml/>`)},
		"old version": {SHA: strings.Repeat("a", 40), SARIF: []byte(`{"version":"2.0.0","runs":[]}`)},
	} {
		if _, _, err := SARIF(u, Options{Key: key}); !errors.Is(err, ErrUpload) {
			t.Errorf("%s: err = %v, want ErrUpload", name, err)
		}
	}
}
