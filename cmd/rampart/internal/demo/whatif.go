package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/whatif"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

// StrictGate is the candidate gate policy of the demo's what-if: Medium
// blocks too.
const StrictGate = "block_on: [CRITICAL, HIGH, MEDIUM]\n"

// whatIf reads the run's history back from the ledger, judges it under
// StrictGate, prints the table and checks that the named versions (v1 and
// v2, released and rolled back with a Medium busybox finding) would have
// been blocked on that finding. It is what `rampart replay --policy` does.
func (e *Env) whatIf(ctx context.Context, out io.Writer, blocked ...string) (whatif.Report, error) {
	path := filepath.Join(e.dataDir, "strict-gate.yaml")
	if err := os.WriteFile(path, []byte(StrictGate), 0o600); err != nil {
		return whatif.Report{}, err
	}
	var c whatif.Candidate
	if err := c.Load(path); err != nil {
		return whatif.Report{}, err
	}
	lc, err := client.New(e.Mesh.HTTPURL(), e.Mesh.HTTPClient)
	if err != nil {
		return whatif.Report{}, err
	}
	history, err := whatif.Read(ctx, lc, time.Time{}, time.Time{})
	if err != nil {
		return whatif.Report{}, err
	}
	rep := whatif.Judge(history, c)
	if err := rep.WriteTable(out); err != nil {
		return rep, err
	}
	for _, v := range blocked {
		i := slices.IndexFunc(rep.Releases, func(r whatif.Release) bool { return r.Version == v })
		if i < 0 {
			return rep, fmt.Errorf("what-if: no release %s in the ledger's history", v)
		}
		r := rep.Releases[i]
		if r.WhatIf != whatif.Blocked || !r.Changed || !strings.Contains(strings.Join(r.Why, "; "), sampleimage.MediumBusybox) {
			return rep, fmt.Errorf("what-if: %s %s would have been %s (%q), want blocked on %s", v, r.Happened, r.WhatIf, r.Why, sampleimage.MediumBusybox)
		}
	}
	return rep, nil
}
