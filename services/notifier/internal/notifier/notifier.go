// Package notifier decides what the notifier service does with each event it
// consumes: a rollback is reported (report built from the ledger, stored),
// paged (PagerDuty), posted (Slack) and announced (a page event), exactly
// once per rollout; an anomaly is a Slack heads-up; a blocked scan and a
// completed release go to the app's configured channels.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	// LedgerWait is how long a rollback waits for the ledger to record it
	// before the message is retried later; LedgerPoll is the first poll
	// interval; ProgressEvery how often the server is told the message is
	// still being worked on.
	LedgerWait, LedgerPoll, ProgressEvery time.Duration
	// MaxDeliver is the consumer's; on the last delivery a report is built
	// without waiting for the ledger any more.
	MaxDeliver int
	// Now is the clock (reports' generatedAt, incident times).
	Now     func() time.Time
	Metrics *Metrics
	Logger  *slog.Logger
}

// Notifier handles the notifier's events.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
}

// New checks cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	switch {
	case cfg.Reports == nil || cfg.Incidents == nil || cfg.Chains == nil || cfg.Publisher == nil:
		return nil, errors.New("notifier: reports, incidents, chains and publisher are required")
	case cfg.Holder == "":
		return nil, errors.New("notifier: holder name is required")
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
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 5 * time.Second
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
	return &Notifier{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics}, nil
}

// Handle is the consumer's handler (bus.Handler): nil to ack, bus.Poison to
// dead-letter, any other error to retry later.
func (n *Notifier) Handle(ctx context.Context, d bus.Delivery) error {
	ev := d.Event
	switch events.KindOf(ev.Type()) {
	case events.KindRollback:
		last := n.cfg.MaxDeliver > 0 && d.Attempt >= uint64(n.cfg.MaxDeliver)
		return n.rollback(ctx, ev, last, func() {
			if d.Msg != nil {
				if err := d.InProgress(); err != nil {
					n.log.Warn("telling the server the rollback is in progress", "event", ev.ID(), "err", err)
				}
			}
		})
	case events.KindAnomaly:
		return n.anomaly(ctx, ev)
	case events.KindScan:
		return n.scan(ctx, ev)
	case events.KindRelease:
		return n.release(ctx, ev)
	}
	return nil // not for the notifier: the filter let it through, nothing to do
}

// routes is an app's configured channels.
type routes struct {
	app   policy.App
	known bool
}

func (n *Notifier) routes(app string) routes {
	if n.cfg.Policy == nil || n.cfg.Policy.Current() == nil {
		return routes{}
	}
	a, ok := n.cfg.Policy.Current().App(app)
	return routes{app: a, known: ok}
}

// pagerDuty returns the app's PagerDuty notifier, nil when none is
// configured. A secret that cannot be resolved is a permanent failure: the
// policy must be fixed, and the dead letter says so (naming the reference,
// never the value).
func (n *Notifier) pagerDuty(r routes) (*pagerduty.Notifier, error) {
	pd := r.app.Notify.PagerDuty
	if pd == nil {
		return nil, nil
	}
	key, err := pd.RoutingKey.Resolve()
	if err != nil {
		return nil, &notify.Error{Channel: notify.ChannelPagerDuty, Err: fmt.Errorf("routing key: %w", err)}
	}
	p, err := pagerduty.New(pagerduty.Config{RoutingKey: key, Severity: pd.Severity, Endpoint: pd.URL}, n.log, n.cfg.HTTPClient)
	if err != nil {
		return nil, &notify.Error{Channel: notify.ChannelPagerDuty, Err: err}
	}
	return p, nil
}

// slack returns the app's Slack notifier, nil when none is configured.
func (n *Notifier) slack(r routes) (*slack.Notifier, error) {
	s := r.app.Notify.Slack
	if s == nil {
		return nil, nil
	}
	url, err := s.Webhook.Resolve()
	if err != nil {
		return nil, &notify.Error{Channel: notify.ChannelSlack, Err: fmt.Errorf("webhook: %w", err)}
	}
	sl, err := slack.New(slack.Config{Webhook: url}, n.log, n.cfg.HTTPClient)
	if err != nil {
		return nil, &notify.Error{Channel: notify.ChannelSlack, Err: err}
	}
	return sl, nil
}

// deliver runs one delivery with in-place retries and records its metrics.
func (n *Notifier) deliver(ctx context.Context, log *slog.Logger, channel, about string, fn func(ctx context.Context) error) error {
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
