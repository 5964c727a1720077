package cli

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var daysRE = regexp.MustCompile(`^([0-9]+)d$`)

// parseWhen reads a --since or --until value: a duration before now (Go
// syntax like 90s or 2h30m, or whole days like 7d) or a time (RFC 3339, or a
// date meaning its midnight UTC).
func parseWhen(flagName, v string, now time.Time) (time.Time, error) {
	if m := daysRE.FindStringSubmatch(v); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n <= 365*100 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%w: %s %q: a duration counts back from now and cannot be negative", errUsage, flagName, v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %s %q is neither a duration (90s, 2h30m, 7d) nor a time (RFC 3339 like 2026-11-26T17:00:00Z, or a date 2026-11-26)", errUsage, flagName, v)
}
