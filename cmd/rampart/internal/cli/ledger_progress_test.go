package cli

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, tt := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 1_000_000, 0, "reading entries: 0 of 1,000,000 (0%)"},
		{250_000, 1_000_000, time.Second, "reading entries: 250,000 of 1,000,000 (25%), 250,000 entries/s, about 3s left"},
		{1_000_000, 1_000_000, 4 * time.Second, "reading entries: 1,000,000 of 1,000,000 (100%), 250,000 entries/s"},
	} {
		if got := progressLine(tt.done, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", tt.done, tt.total, tt.elapsed, got, tt.want)
		}
	}
	// Not a terminal: no progress at all.
	if p := newProgress(&strings.Builder{}, time.Now); p != nil {
		t.Fatal("progress on a strings.Builder")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := newProgress(f, time.Now); p != nil {
		t.Fatal("progress on a file")
	}
}
