// Package notifier decides what the notifier service does with each event it
// consumes: a rollback is reported (report built from the ledger, stored),
// paged (PagerDuty), posted (Slack) and announced (a page event), exactly
// once per rollout; an anomaly is a Slack heads-up; a blocked scan and a
// completed release go to the app's configured channels.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/notifier/internal/incident"
	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/notify/pagerduty"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack"
	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// Source is the CloudEvents source of the events the notifier publishes.
const Source = "/rampart/notifier"

// Publisher publishes an event (bus.Bus).
type Publisher interface {
	Publish(ctx context.Context, ev cloudevents.Event) (*jetstream.PubAck, error)
}

// Config is what a Notifier needs.
type Config struct {
	// Policy holds the apps' notification routes; nil means none is
	// configured and rollbacks are only reported.
	Policy    *policy.Store
	Reports   *report.Store
	Incidents *incident.Store
	Chains    ChainReader
	Publisher Publisher
	// Holder names this instance in incident claims.
	Holder string
	// HTTPClient carries PagerDuty and Slack requests (nil: defaults).
	HTTPClient *http.Client
	// Backoff bounds the in-place retries of one delivery.
	Backoff notify.Backoff
	// LedgerWait is how long one delivery of a rollback, once paged, waits
	// for the ledger to record it before the message is retried later;
	// LedgerPoll is the first poll interval.
	LedgerWait, LedgerPoll time.Duration
	// MaxDeliver is the consumer's; on the last delivery the report is
	// built without waiting for the ledger any more.
	MaxDeliver int
	// Now is the clock (reports' generatedAt, incident times).
	Now     func() time.Time
	Metrics *Metrics
	Logger  *slog.Logger
}

// Dispatcher handles the notifier's events.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
}

// New checks cfg and returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	switch {
	case cfg.Reports == nil || cfg.Incidents == nil || cfg.Chains == nil || cfg.Publisher == nil:
		return nil, errors.New("dispatch: reports, incidents, chains and publisher are required")
	case cfg.Holder == "":
		return nil, errors.New("dispatch: holder name is required")
	}
	if cfg.Backoff.Attempts == 0 {
		cfg.Backoff = notify.DefaultBackoff()
	}
	if cfg.LedgerWait <= 0 {
		cfg.LedgerWait = 10 * time.Second
	}
	if cfg.LedgerPoll <= 0 {
		cfg.LedgerPoll = 50 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics}, nil
}

// Handle is the consumer's handler (bus.Handler): nil to ack, bus.Poison to
// dead-letter, any other error to retry later.
func (n *Dispatcher) Handle(ctx context.Context, d bus.Delivery) error {
	ev := d.Event
	switch events.KindOf(ev.Type()) {
	case events.KindRollback:
		// Waiting for the ledger or for another replica can outlast the
		// ack wait: keep the message ours meanwhile.
		stop := d.KeepAlive(ctx)
		defer stop()
		last := n.cfg.MaxDeliver > 0 && d.Attempt >= uint64(n.cfg.MaxDeliver)
		return n.rollback(ctx, ev, last)
	case events.KindAnomaly:
		return n.anomaly(ctx, ev)
	case events.KindScan:
		return n.scan(ctx, ev)
	case events.KindRelease:
		return n.release(ctx, ev)
	case events.KindDrill:
		return n.drill(ctx, ev)
	}
	return nil // not for the notifier: the filter let it through, nothing to do
}

// routes is an app's configured channels.
type routes struct {
	app   policy.App
	known bool
}

func (n *Dispatcher) routes(app string) routes {
	if n.cfg.Policy == nil || n.cfg.Policy.Current() == nil {
		return routes{}
	}
	a, ok := n.cfg.Policy.Current().App(app)
	return routes{app: a, known: ok}
}

// channels returns those of the wanted channels the app has configured, by
// name (notify.Channel*).
// A channel that cannot be built is a permanent failure: the policy must be
// fixed, and the dead letter says so (naming a secret's reference, never its
// value).
func (n *Dispatcher) channels(r routes, wanted ...string) (map[string]notify.Notifier, []error) {
	out := map[string]notify.Notifier{}
	var errs []error
	if pd := r.app.Notify.PagerDuty; pd != nil && slices.Contains(wanted, notify.ChannelPagerDuty) {
		key, err := pd.RoutingKey.Resolve()
		if err != nil {
			errs = append(errs, &notify.Error{Channel: notify.ChannelPagerDuty, Err: fmt.Errorf("routing key: %w", err)})
		} else if p, err := pagerduty.New(pagerduty.Config{RoutingKey: key, Severity: pd.Severity, Endpoint: pd.URL}, n.log, n.cfg.HTTPClient); err != nil {
			errs = append(errs, &notify.Error{Channel: notify.ChannelPagerDuty, Err: err})
		} else {
			out[notify.ChannelPagerDuty] = p
		}
	}
	if s := r.app.Notify.Slack; s != nil && slices.Contains(wanted, notify.ChannelSlack) {
		url, err := s.Webhook.Resolve()
		if err != nil {
			errs = append(errs, &notify.Error{Channel: notify.ChannelSlack, Err: fmt.Errorf("webhook: %w", err)})
		} else if sl, err := slack.New(slack.Config{Webhook: url}, n.log, n.cfg.HTTPClient); err != nil {
			errs = append(errs, &notify.Error{Channel: notify.ChannelSlack, Err: err})
		} else {
			out[notify.ChannelSlack] = sl
		}
	}
	return out, errs
}

// send delivers note on one channel with in-place retries and records the
// metrics.
func (n *Dispatcher) send(ctx context.Context, log *slog.Logger, channel string, ch notify.Notifier, note *notify.Notification) error {
	return n.deliver(ctx, log, channel, note.About, func(ctx context.Context) error {
		retry, err := ch.Notify(ctx, note)
		if err == nil {
			return nil
		}
		var e *notify.Error
		if !errors.As(err, &e) {
			err = &notify.Error{Channel: channel, Retryable: retry, Err: err}
		}
		return err
	})
}

// deliver runs one delivery with in-place retries and records its metrics.
func (n *Dispatcher) deliver(ctx context.Context, log *slog.Logger, channel, about string, fn func(ctx context.Context) error) error {
	attempts, err := notify.Retry(ctx, n.cfg.Backoff, fn, func(attempt int, err error, wait time.Duration) {
		n.metrics.retries.WithLabelValues(channel).Inc()
		log.Warn("delivery failed; retrying", "channel", channel, "attempt", attempt, "wait", wait, "err", err)
	})
	switch {
	case err == nil:
		n.metrics.notifications.WithLabelValues(channel, about, resultSent).Inc()
		log.Info("notified", "channel", channel, "attempts", attempts)
	case notify.Retryable(err):
		n.metrics.notifications.WithLabelValues(channel, about, resultRetried).Inc()
		log.Warn("delivery failed; the message will be retried", "channel", channel, "attempts", attempts, "err", err)
	default:
		n.metrics.notifications.WithLabelValues(channel, about, resultFailed).Inc()
		log.Error("delivery failed permanently", "channel", channel, "attempts", attempts, "err", err)
	}
	return err
}

// outcome turns delivery failures into the message's fate: any permanent
// failure dead-letters it (with every reason), otherwise any failure retries
// it, otherwise it is done.
func outcome(errs []error) error {
	var permanent, transient []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if notify.Retryable(err) {
			transient = append(transient, err)
		} else {
			permanent = append(permanent, err)
		}
	}
	switch {
	case len(permanent) > 0:
		return bus.Poison(errors.Join(append(permanent, transient...)...))
	case len(transient) > 0:
		return errors.Join(transient...)
	}
	return nil
}
