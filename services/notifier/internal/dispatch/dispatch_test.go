package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/notifier/internal/chaintest"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/notify/pagerduty"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack/slacktest"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

func TestOutcome(t *testing.T) {
	permanent := notify.StatusError(notify.ChannelPagerDuty, 400, errors.New("invalid event"))
	transient := notify.StatusError(notify.ChannelSlack, 503, errors.New("unavailable"))
	tests := []struct {
		name   string
		errs   []error
		poison bool
		ok     bool
	}{
		{name: "all sent", errs: []error{nil, nil}, ok: true},
		{name: "transient retries", errs: []error{nil, transient}},
		{name: "permanent dead-letters with every reason", errs: []error{transient, permanent}, poison: true},
		{name: "a store failure retries", errs: []error{errors.New("KV timeout")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := outcome(tt.errs)
			if (err == nil) != tt.ok || errors.Is(err, bus.ErrPoison) != tt.poison {
				t.Fatalf("outcome = %v", err)
			}
			if tt.poison && (!strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "HTTP 503")) {
				t.Errorf("reason %q does not name both failures", err)
			}
		})
	}
}

// TestMessagesFitLimits: a report with a long timeline still makes a valid
// Slack message and a PagerDuty summary within the Events API's limit.
func TestMessagesFitLimits(t *testing.T) {
	rel := chaintest.NewRelease(t, "chain-1", strings.Repeat("r", 300))
	chain := chaintest.Entries(t, 0, rel.Events...)
	// Many canary steps: the timeline section must be shortened, not refused.
	for i := range 200 {
		e := *chain[4]
		e.Index = uint64(len(chain))
		e.EventID = fmt.Sprintf("step-%d", i)
		chain = append(chain[:len(chain)-1], &e, chain[len(chain)-1])
	}
	r, err := report.Build(report.Input{Rollback: rel.Rollback, Chain: chain, Now: chaintest.T0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(rollbackMessage(r, "paged on PagerDuty, dedup key "+pagerduty.DedupKey(r.RolloutID)))
	if err != nil {
		t.Fatal(err)
	}
	if _, problems := slacktest.Check(body); len(problems) > 0 {
		t.Errorf("Slack message: %v", problems)
	}
	rb, err := events.RollbackOf(rel.Rollback)
	if err != nil {
		t.Fatal(err)
	}
	if s := pagerduty.Truncate(pageSummary(rb), pagerduty.MaxSummary); len(s) > pagerduty.MaxSummary {
		t.Errorf("summary of %d bytes", len(s))
	}
}
