package report

import (
	"slices"
	"strconv"
	"strings"

	"github.com/rampartci/rampart/pkg/events"
)

// Number formats a metric value for people: up to four significant digits.
func Number(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// severityOrder is the order findings are shown in.
var severityOrder = []string{"critical", "high", "medium", "low", "unknown"}

func severityRank(s string) int {
	if i := slices.Index(severityOrder, strings.ToLower(s)); i >= 0 {
		return i
	}
	return len(severityOrder)
}

// topFindings returns up to n findings, worst first, in a stable order.
func topFindings(fs []events.Finding, n int) []events.Finding {
	if len(fs) == 0 {
		return nil
	}
	out := slices.Clone(fs)
	slices.SortStableFunc(out, func(a, b events.Finding) int {
		if ra, rb := severityRank(a.Severity), severityRank(b.Severity); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out[:min(n, len(out))]
}
