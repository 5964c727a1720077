package app

import (
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
	for _, bad := range []Options{{}, {KeyFile: "k", CheckpointInterval: time.Millisecond}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}
