package progress_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/progress"
)

func TestQuietWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	b := progress.New(&buf, "replay", "events", 10)
	b.Set(5, 0)
	b.Add(5)
	b.Done()
	if buf.Len() != 0 {
		t.Fatalf("drew %q into a buffer", buf.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if progress.New(f, "replay", "events", 10) != nil {
		t.Fatal("a regular file is taken for a terminal")
	}
}

func TestCountRateETA(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	b := progress.Force(&buf, "replay", "events", 1000, clock)
	now = now.Add(2 * time.Second)
	b.Set(400, 0)
	if got, want := b.Line(now), "replay: 400/1000 events, 40% (200/s, ETA 3s)"; got != want {
		t.Fatalf("line %q, want %q", got, want)
	}
	if !strings.HasSuffix(buf.String(), "replay: 400/1000 events, 40% (200/s, ETA 3s)") {
		t.Fatalf("drawn %q", buf.String())
	}
	// Within the redraw interval nothing more is drawn.
	n := buf.Len()
	now = now.Add(10 * time.Millisecond)
	b.Add(1)
	if buf.Len() != n {
		t.Fatalf("redrawn after 10ms: %q", buf.String()[n:])
	}
	b.Done()
	if !strings.HasSuffix(buf.String(), "\r\033[K") {
		t.Fatalf("Done left the line: %q", buf.String())
	}
	u := progress.Force(&bytes.Buffer{}, "up", "checks", 0, clock)
	u.Set(3, 0)
	if got := u.Line(now.Add(time.Second)); !strings.HasPrefix(got, "up: 3 checks (") || strings.Contains(got, "ETA") {
		t.Fatalf("unknown total: %q", got)
	}
}

func TestSteps(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	b := progress.Force(&buf, "rampart up", "steps", 3, func() time.Time { return now })
	b.Step("NATS")
	now = now.Add(1500 * time.Millisecond)
	b.Step("scanner")
	if want := "rampart up: waiting for scanner (step 2 of 3, 1.5s)"; !strings.HasSuffix(buf.String(), want) {
		t.Fatalf("drawn %q, want it to end in %q", buf.String(), want)
	}
}
