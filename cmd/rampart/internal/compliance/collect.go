package compliance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
	"github.com/rampartci/rampart/pkg/ledger/verify"
)

// Options says what a report covers.
type Options struct {
	// From and To bound the period: entries recorded at or after From and
	// before To.
	From, To time.Time
	Filter   Filter
	// Now is the report's generation time (default time.Now).
	Now func() time.Time
	// Progress, when set, is told how many of the ledger's entries have
	// been read, of how many.
	Progress func(done, total int64)
}

// ErrNoCheckpoint is returned when the ledger has signed no checkpoint yet:
// nothing it holds can be proven.
var ErrNoCheckpoint = errors.New("the ledger has signed no checkpoint yet")

// Collect reads the ledger through its query API up to its latest signed
// checkpoint, checks every entry and the checkpoint with v (the verifier key
// from a trusted place, never the one the ledger serves), proves the entries
// the report needs and builds the report. A ledger whose entries do not
// match its signed checkpoint fails, naming the entry.
func Collect(ctx context.Context, c *client.Client, v *checkpoint.Verifier, opts Options) (*Report, error) {
	if !opts.From.Before(opts.To) {
		return nil, fmt.Errorf("the period is empty: from %s is not before to %s", opts.From.Format(time.RFC3339), opts.To.Format(time.RFC3339))
	}
	note, err := c.LatestCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the latest checkpoint: %w", err)
	}
	if note == nil {
		return nil, ErrNoCheckpoint
	}
	cp, err := v.Open(note)
	if err != nil {
		return nil, fmt.Errorf("the ledger's latest checkpoint: %w", err)
	}
	raw, err := readEntries(ctx, c, cp.Size, opts.Progress)
	if err != nil {
		return nil, err
	}
	checker := verify.NewChecker(v)
	for _, e := range raw {
		checker.Entry(verify.Entry{Data: []byte(e.Entry), Signature: e.Signature, Leaf: e.Leaf})
	}
	checker.Checkpoint(note)
	if _, err := checker.Result(); err != nil {
		return nil, fmt.Errorf("the ledger does not verify against its checkpoint (size %d): %w", cp.Size, err)
	}
	parsed := make([]*entry.Entry, len(raw))
	t := tree.New()
	for i, e := range raw {
		if parsed[i], err = entry.Unmarshal(e.Entry); err != nil {
			return nil, fmt.Errorf("ledger entry %d: %w", i, err) // the checker parsed it already
		}
		if _, err := t.AppendHash(tlog.RecordHash(e.Entry)); err != nil {
			return nil, err
		}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	in := Input{
		GeneratedAt: now().UTC(),
		Period:      Period{From: opts.From.UTC(), To: opts.To.UTC()},
		Filter:      opts.Filter,
		Ledger:      Ledger{URL: c.URL(), Key: v.Key(), Checkpoint: string(note), Size: cp.Size, Root: cp.Root},
	}
	for _, i := range selectEntries(parsed, in.Period, opts.Filter) {
		leaf, err := t.LeafHash(i)
		if err != nil {
			return nil, err
		}
		proof, err := t.InclusionProof(i, cp.Size)
		if err != nil {
			return nil, err
		}
		in.Entries = append(in.Entries, ProvenEntry{Index: i, Entry: string(raw[i].Entry), Signature: raw[i].Signature, LeafHash: leaf, Proof: proof})
	}
	return Build(in)
}

// readEntries reads entries [0, size) page by page.
func readEntries(ctx context.Context, c *client.Client, size int64, progress func(done, total int64)) ([]client.Entry, error) {
	out := make([]client.Entry, 0, size)
	for from := int64(0); from < size; {
		page, err := c.Entries(ctx, from, size)
		if err != nil {
			return nil, fmt.Errorf("reading ledger entries from %d: %w", from, err)
		}
		if len(page.Entries) == 0 {
			return nil, fmt.Errorf("the ledger answered no entry from %d of %d", from, size)
		}
		for _, e := range page.Entries {
			if e.Index != from {
				return nil, fmt.Errorf("the ledger answered entry %d where entry %d was asked for", e.Index, from)
			}
			out = append(out, e)
			from++
			if from == size {
				break
			}
		}
		if progress != nil {
			progress(from, size)
		}
	}
	return out, nil
}

// selectEntries returns, in ledger order, the indexes of the entries the
// report carries: those recorded in the period that the filter keeps
// (entries of no application, such as dead letters and the ledger's own
// anomalies, are always kept), every entry of a change that has one of
// them, and, for a report with no filter, the entries just before and after
// the period that prove where it starts and ends.
func selectEntries(es []*entry.Entry, p Period, f Filter) []int64 {
	keep := map[int64]bool{}
	chains := map[string]bool{}
	first, last := int64(-1), int64(-1)
	for i, e := range es {
		if !inPeriod(e, p) {
			continue
		}
		if first < 0 {
			first = int64(i)
		}
		last = int64(i)
		if !f.keeps(describeEntry(e)) {
			continue
		}
		keep[int64(i)] = true
		if e.ChainID != "" {
			chains[e.ChainID] = true
		}
	}
	for i, e := range es {
		if e.ChainID != "" && chains[e.ChainID] {
			keep[int64(i)] = true
		}
	}
	if f.empty() && first >= 0 {
		if first > 0 {
			keep[first-1] = true
		}
		if last+1 < int64(len(es)) {
			keep[last+1] = true
		}
	}
	out := make([]int64, 0, len(keep))
	for i := range keep {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

func inPeriod(e *entry.Entry, p Period) bool {
	return !e.RecordedAt.Before(p.From) && e.RecordedAt.Before(p.To)
}

func (f Filter) empty() bool { return len(f.Apps) == 0 && len(f.Environments) == 0 }

// keeps says whether the filter keeps an entry of application app in
// environment env; entries of no application are always kept.
func (f Filter) keeps(d entryFacts) bool {
	if d.app == "" {
		return true
	}
	if len(f.Apps) > 0 && !slices.Contains(f.Apps, d.app) {
		return false
	}
	return len(f.Environments) == 0 || d.env == "" || slices.Contains(f.Environments, d.env)
}
