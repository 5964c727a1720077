package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
)

// ComplianceDir is where, under the demo's data directory, the demo writes
// the compliance report of its own run.
const ComplianceDir = "compliance"

// LedgerKeyFile is the ledger's verifier key under the demo's data
// directory.
func LedgerKeyFile(dataDir string) string {
	return filepath.Join(dataDir, "ledger", "ledger.key.pub")
}

// ledgerVerifier is the ledger's verifier key, read from the file the
// ledger wrote beside its signing key.
func (e *Env) ledgerVerifier() (*checkpoint.Verifier, error) {
	pub, err := os.ReadFile(LedgerKeyFile(e.dataDir))
	if err != nil {
		return nil, err
	}
	return checkpoint.NewVerifier(strings.TrimSpace(string(pub)))
}

// writeComplianceReport builds the compliance report of the run since from
// out of the ledger, writes it into the data directory, verifies the JSON
// as `rampart report verify` does, and checks that it states what the demo
// showed: the blocked commit, v2 rolled back with its trigger and page, v3
// blocked on a CVE.
func (e *Env) writeComplianceReport(ctx context.Context, from time.Time, blockedSHA, cve string) (*compliance.Report, []string, error) {
	v, err := e.ledgerVerifier()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(e.Mesh.HTTPURL(), e.Mesh.HTTPClient)
	if err != nil {
		return nil, nil, err
	}
	r, err := compliance.Collect(ctx, c, v, compliance.Options{From: from, To: time.Now().Add(time.Second)})
	if err != nil {
		return nil, nil, fmt.Errorf("compliance report: %w", err)
	}
	paths, err := compliance.WriteFiles(filepath.Join(e.dataDir, ComplianceDir), r)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(paths[0])
	if err != nil {
		return nil, nil, err
	}
	if _, err := compliance.Verify(data, v); err != nil {
		return nil, nil, fmt.Errorf("the compliance report does not verify: %w", err)
	}
	return r, paths, checkStory(r, blockedSHA, cve)
}

// checkStory checks that the report names the demo's three stops.
func checkStory(r *compliance.Report, blockedSHA, cve string) error {
	find := func(what string, match func(compliance.Change) bool) (compliance.Change, error) {
		i := slices.IndexFunc(r.Changes, match)
		if i < 0 {
			return compliance.Change{}, fmt.Errorf("the compliance report does not show %s", what)
		}
		return r.Changes[i], nil
	}
	if _, err := find("the blocked commit", func(c compliance.Change) bool {
		return c.Outcome == compliance.OutcomeBlockedAtSource && len(blockedSHA) >= 12 && strings.Contains(c.Subject, blockedSHA[:12])
	}); err != nil {
		return err
	}
	v2, err := find("v2 rolled back", func(c compliance.Change) bool { return c.Version == "v2" && c.Outcome == compliance.OutcomeRolledBack })
	if err != nil {
		return err
	}
	if v2.Rollback.Trigger == "" || v2.Page == nil || v2.Page.Ticket == "" {
		return fmt.Errorf("the compliance report shows v2's rollback without its trigger or page: %+v, %+v", v2.Rollback, v2.Page)
	}
	v3, err := find("v3 blocked", func(c compliance.Change) bool {
		return c.Version == "v3" && c.Outcome == compliance.OutcomeBlockedAtImage
	})
	if err != nil {
		return err
	}
	for _, g := range v3.Gates {
		for _, f := range g.Findings {
			if g.Outcome == events.OutcomeBlocked && f.ID == cve {
				return nil
			}
		}
	}
	return fmt.Errorf("the compliance report does not show v3 blocked on %s: %+v", cve, v3.Gates)
}
