package replay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/replay"
)

func TestReplaySubjects(t *testing.T) {
	now := time.Date(2026, 11, 26, 17, 26, 18, 123456789, time.FixedZone("CET", 3600))
	if got := replay.DefaultPrefix(now); got != "replay.20261126T162618_123Z" {
		t.Errorf("DefaultPrefix = %q", got)
	}
	for _, tt := range []struct{ prefix, subject, want string }{
		{"replay.20261126T162618_123Z", "rampart.commit.shop", "replay.20261126T162618_123Z.commit.shop"},
		{"rampart", "rampart.commit.shop", "rampart.commit.shop"},
		{"audit", "rampart.deadletter.ledger", "audit.deadletter.ledger"},
	} {
		if got := replay.Subject(tt.prefix, tt.subject); got != tt.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", tt.prefix, tt.subject, got, tt.want)
		}
	}
	for p, live := range map[string]bool{"rampart": false, "replay.x": false, "rampartx": false, "rampart.copy": true, "rampart.replay.x": true} {
		if err := replay.CheckPrefix(p); errors.Is(err, replay.ErrLivePrefix) != live {
			t.Errorf("CheckPrefix(%q) = %v", p, err)
		}
	}
}
