package whatif

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// Read reads the events the ledger recorded in [since, until) (a zero time
// is unbounded), in ledger order, through its query API. Dead letters are
// skipped: they were never acted on.
func Read(ctx context.Context, c *client.Client, since, until time.Time) ([]Record, error) {
	var out []Record
	for from := int64(0); ; {
		page, err := c.Entries(ctx, from, -1)
		if err != nil {
			return nil, fmt.Errorf("read the ledger from entry %d: %w", from, err)
		}
		for _, je := range page.Entries {
			e, err := entry.Unmarshal(je.Entry)
			if err != nil {
				return nil, fmt.Errorf("ledger entry %d: %w", je.Index, err)
			}
			if e.Kind != entry.KindEvent || e.RecordedAt.Before(since) || (!until.IsZero() && !e.RecordedAt.Before(until)) {
				continue
			}
			evs, err := events.ParseStructured(e.Event)
			if err != nil || len(evs) != 1 {
				return nil, fmt.Errorf("ledger entry %d: not one CloudEvent: %v", je.Index, err)
			}
			out = append(out, Record{Index: je.Index, Event: evs[0]})
		}
		if page.Next == nil {
			return out, nil
		}
		if *page.Next <= from {
			return nil, fmt.Errorf("the ledger's next page %d does not advance past %d", *page.Next, from)
		}
		from = *page.Next
	}
}
