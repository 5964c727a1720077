// Package notify is the notifier's channels behind one interface: a
// Notifier delivers a Notification once and says whether trying again may
// help. Each channel is one subpackage (notify/pagerduty, notify/slack) with
// the constructor New(conf, logger, httpClient). The package also holds what
// channels share: delivery errors classified as retryable or not, a retry
// loop with backoff that respects the context and says how many attempts it
// made, and the people form of a notification (Message).
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Channel names, as in the policy's notify routes and the metrics.
const (
	ChannelPagerDuty = "pagerduty"
	ChannelSlack     = "slack"
	// ChannelEvent is the bus: the page event announcing a page.
	ChannelEvent = "event"
)

// Notifier is one channel to people.
type Notifier interface {
	// Notify delivers n once. On failure, retry says whether sending the
	// same notification again may succeed (rate limiting, server errors,
	// network failures); the error is an *Error.
	Notify(ctx context.Context, n *Notification) (retry bool, err error)
}

// Notification is one piece of news, in the forms channels need: a one-line
// summary and machine-readable details for incident tools (PagerDuty), a
// message for people (chat).
type Notification struct {
	// About is what it is about: rollback, anomaly, scan, release.
	About string
	// Key names the incident: notifications with one key are one incident
	// (PagerDuty's dedup key).
	Key string
	// Summary is one line: what, where, why.
	Summary string
	// Severity is critical, error, warning or info; empty takes the
	// channel's configured severity.
	Severity string
	// Source is where the problem is, e.g. "shop (prod)"; Component, Group
	// and Class place it further (app, environment, rule).
	Source, Component, Group, Class string
	// Time is when it happened.
	Time time.Time
	// Details must encode as a JSON object.
	Details any
	// Message is the form for people.
	Message Message
}

// Error is a delivery a channel's endpoint refused or could not take.
type Error struct {
	Channel string
	// Status is the HTTP status of the answer, 0 when there was none.
	Status int
	// Retryable is true when the same request may succeed later: rate
	// limiting, server errors, network failures.
	Retryable bool
	// RetryAfter is how long the endpoint asked to wait (429 Retry-After).
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: HTTP %d: %v", e.Channel, e.Status, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Channel, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// StatusError classifies an HTTP answer: 429, 408 and 5xx are retryable,
// every other status is not (the request itself is wrong and sending it again
// gives the same answer).
func StatusError(channel string, status int, err error) *Error {
	return &Error{
		Channel:   channel,
		Status:    status,
		Retryable: status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500,
		Err:       err,
	}
}

// Retryable reports whether err may go away if the delivery is tried again.
// An *Error says so itself; a cancelled or expired context never does; any
// other error (a connection that failed) does.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Backoff bounds a retry loop.
type Backoff struct {
	// Attempts is the most times the delivery is tried (>= 1).
	Attempts int
	// Initial is the wait after the first failure; it doubles up to Max.
	Initial, Max time.Duration
}

// DefaultBackoff tries four times within about eight seconds, short enough
// to stay well inside a consumer's ack wait.
func DefaultBackoff() Backoff {
	return Backoff{Attempts: 4, Initial: 500 * time.Millisecond, Max: 4 * time.Second}
}

// delay is the wait after failed attempt n (1-based), at least what the
// endpoint asked for and never more than Max.
func (b Backoff) delay(n int, asked time.Duration) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(max(d, asked), b.Max)
}

// Retry calls deliver until it succeeds, fails with an error that is not
// retryable, the attempts are used up or ctx ends. It returns how many
// attempts were made; a returned error says that number too. onRetry, when
// set, is told about each failure that will be retried.
func Retry(ctx context.Context, b Backoff, deliver func(ctx context.Context) error, onRetry func(attempt int, err error, wait time.Duration)) (int, error) {
	attempts := max(b.Attempts, 1)
	for n := 1; ; n++ {
		err := deliver(ctx)
		if err == nil {
			return n, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return n, fmt.Errorf("stopped after %s: %w (last error: %v)", plural(n), cerr, err)
		}
		if !Retryable(err) {
			return n, fmt.Errorf("failed permanently on attempt %d: %w", n, err)
		}
		if n >= attempts {
			return n, fmt.Errorf("gave up after %s: %w", plural(n), err)
		}
		var asked time.Duration
		var e *Error
		if errors.As(err, &e) {
			asked = e.RetryAfter
		}
		wait := b.delay(n, asked)
		if onRetry != nil {
			onRetry(n, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, fmt.Errorf("stopped after %s: %w (last error: %v)", plural(n), ctx.Err(), err)
		case <-t.C:
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}
