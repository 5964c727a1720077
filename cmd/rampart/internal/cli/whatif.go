package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/whatif"
)

type whatIfArgs struct {
	policies     []string
	since, until string
	server, ca   string
	json         bool
}

// runWhatIf is `rampart replay --policy`: recorded history judged under a
// candidate policy, nothing live touched.
func runWhatIf(ctx context.Context, e *env, a whatIfArgs, now time.Time) error {
	var c whatif.Candidate
	for _, p := range a.policies {
		if err := c.Load(p); err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
	}
	var since, until time.Time
	var err error
	if a.since != "" {
		if since, err = parseWhen("--since", a.since, now); err != nil {
			return err
		}
	}
	if a.until != "" {
		if until, err = parseWhen("--until", a.until, now); err != nil {
			return err
		}
		if !until.After(since) {
			return fmt.Errorf("%w: --until %s is not after --since %s", errUsage, until.UTC().Format(time.RFC3339Nano), since.UTC().Format(time.RFC3339Nano))
		}
	}
	lc, err := ledgerClient(a.server, a.ca)
	if err != nil {
		return err
	}
	history, err := whatif.Read(ctx, lc, since, until)
	if err != nil {
		return err
	}
	rep := whatif.Judge(history, c)
	if a.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteTable(e.stdout)
}
