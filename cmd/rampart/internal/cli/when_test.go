package cli

import (
	"errors"
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"90s", now.Add(-90 * time.Second), false},
		{"2h30m", now.Add(-150 * time.Minute), false},
		{"0s", now, false},
		{"7d", time.Date(2026, 11, 19, 18, 0, 0, 0, time.UTC), false},
		{"2026-11-26T17:00:00Z", time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC), false},
		{"2026-11-26T18:00:00.5+01:00", time.Date(2026, 11, 26, 17, 0, 0, 5e8, time.UTC), false},
		{"2026-11-25", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), false},
		{"-1h", time.Time{}, true},
		{"1 hour", time.Time{}, true},
		{"7days", time.Time{}, true},
		{"99999999999d", time.Time{}, true},
		{"2026-11-26 17:00", time.Time{}, true},
		{"", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseWhen("--since", tt.in, now)
		if tt.wantErr {
			if !errors.Is(err, errUsage) {
				t.Errorf("parseWhen(%q) = %v, %v; want a usage error", tt.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestReplayPrefixes(t *testing.T) {
	for p, ok := range map[string]bool{
		"rampart": true, "replay.x": true, "audit": true, "rampartx": true,
		"rampart.copy": false, "replay.*": false, "replay.>": false, "a..b": false, "": false, "a b": false,
	} {
		if err := checkReplayPrefix(p); (err == nil) != ok {
			t.Errorf("checkReplayPrefix(%q) = %v", p, err)
		}
	}
}
