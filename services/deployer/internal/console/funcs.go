package console

import (
	"html/template"
	"strconv"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// funcs are the templates' helpers.
func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		// iso is a machine-readable time for <time datetime>.
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		// clock is a time as people read it on the page.
		"clock": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		// until says how long until t, for "next step in".
		"until": func(t time.Time) string {
			d := t.Sub(now()).Round(time.Second)
			if d <= 0 {
				return "now"
			}
			return "in " + d.String()
		},
		"percent": percent,
		"topFindings": func(s *events.Scan) []events.Finding {
			if s == nil || len(s.Findings) <= 5 {
				if s == nil {
					return nil
				}
				return s.Findings
			}
			return s.Findings[:5]
		},
		"itoa": strconv.Itoa,
	}
}
