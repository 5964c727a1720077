package whatif

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the report for people: one line per release, what
// happened beside what would have (changed ones marked *), then why for
// each changed release.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVERSION\tAPP\tSCANNED\tHAPPENED\tWHAT IF\tWHY")
	for _, rel := range r.Releases {
		mark := ""
		if rel.Changed {
			mark = "*"
		}
		why := ""
		if len(rel.Why) > 0 {
			why = rel.Why[0]
			if len(rel.Why) > 1 {
				why += fmt.Sprintf(" (+%d more)", len(rel.Why)-1)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, rel.Version, rel.App, rel.At.Format(time.DateTime), rel.Happened, rel.WhatIf, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d of %d releases would have ended differently", r.Changed, len(r.Releases))
	var under []string
	if r.GatePolicy != "" {
		under = append(under, "gate policy "+r.GateURI+" ("+r.GatePolicy+")")
	}
	if r.AppsPolicy != "" {
		under = append(under, "rampart.yaml "+r.AppsFile+" ("+r.AppsPolicy+")")
	}
	fmt.Fprintf(w, " under %s (%d events read", strings.Join(under, " and "), r.Events)
	if r.SourceScans > 0 {
		fmt.Fprintf(w, "; %d source scan(s) not re-judged", r.SourceScans)
	}
	fmt.Fprintln(w, ").")
	for _, rel := range r.Releases {
		if !rel.Changed {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s, chain %s): %s, would have been %s\n", rel.Version, rel.App, rel.Chain, rel.Happened, rel.WhatIf)
		if rel.HappenedWhy != "" {
			fmt.Fprintf(w, "  happened: %s\n", rel.HappenedWhy)
		}
		for _, why := range rel.Why {
			fmt.Fprintf(w, "  why: %s\n", why)
		}
		for _, n := range rel.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		fmt.Fprintf(w, "  ledger entries: %s\n", strings.Trim(fmt.Sprint(rel.Evidence), "[]"))
	}
	return nil
}
