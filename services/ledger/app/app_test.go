package app

import (
	"strings"
	"testing"
	"time"
)

func TestNewFillsDefaults(t *testing.T) {
	a, err := New(Options{KeyFile: "ledger.key"})
	if err != nil {
		t.Fatal(err)
	}
	if d := DefaultOptions(""); a.opts.Origin != d.Origin || a.opts.CheckpointInterval != d.CheckpointInterval {
		t.Errorf("options = %+v, want the defaults filled in", a.opts)
	}
	if a.opts.CheckpointFile != "ledger.checkpoint" {
		t.Errorf("checkpoint file = %q, want ledger.checkpoint beside the key", a.opts.CheckpointFile)
	}
	if _, err := New(Options{KeyFile: "k", Replicas: 2}); err == nil || !strings.Contains(err.Error(), "--ledger-replicas 2: want 1, 3 or 5") {
		t.Errorf("New with 2 replicas: %v", err)
	}
	for _, bad := range []Options{{}, {KeyFile: "k", CheckpointInterval: time.Millisecond}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}
