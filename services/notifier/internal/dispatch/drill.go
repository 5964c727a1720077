package dispatch

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
)

// drill pages for a chaos drill that failed, as loudly as for a real
// rollback (PagerDuty at critical, and Slack): a pipeline that did not
// catch the drill's fault would not catch a real one either. A drill that
// passed is only recorded (by the ledger): its rollback already paged.
func (n *Dispatcher) drill(ctx context.Context, ev cloudevents.Event) error {
	d, err := events.DrillOf(ev)
	if err != nil {
		return bus.Poison(fmt.Errorf("read drill: %w", err))
	}
	if d.Outcome != events.DrillFailed {
		return nil
	}
	log := n.log.With("app", d.App, "environment", d.Environment, "drill", d.DrillID, "event", ev.ID())
	text := fmt.Sprintf("Chaos drill %s failed on %s in %s: %s", d.Name, d.App, d.Environment, d.Reason)
	fs := []notify.Field{
		{Label: "Fault", Value: notify.Escape(d.Fault + " " + d.FaultDetail)},
		{Label: "Expected", Value: notify.Escape(fmt.Sprintf("rollback within %d ms, %d page(s)", d.ExpectRollbackWithinMs, d.ExpectPages))},
		{Label: "Seen", Value: notify.Escape(d.Text())},
	}
	if d.RolloutID != "" {
		fs = append(fs, notify.Field{Label: "Rollout", Value: notify.Code(d.RolloutID)})
	}
	return n.toChannels(ctx, log, n.routes(d.App), []string{notify.ChannelPagerDuty, notify.ChannelSlack}, &notify.Notification{
		About: events.KindDrill, Key: "drill:" + d.DrillID, Severity: "critical", Summary: text,
		Source: d.App + " (" + d.Environment + ")", Component: d.App, Group: d.Environment, Class: "chaos-drill",
		Time: ev.Time(), Details: d,
		Message: notify.Message{Text: text, Blocks: []notify.Block{notify.Header("Chaos drill failed: " + d.Name), notify.Fields(fs...)}},
	})
}
