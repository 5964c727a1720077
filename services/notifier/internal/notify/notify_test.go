package notify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	fast := Backoff{Attempts: 3, Initial: time.Millisecond, Max: 4 * time.Millisecond}
	temporary := StatusError(ChannelPagerDuty, 500, errors.New("boom"))
	tests := []struct {
		name      string
		results   []error // one per attempt; the last repeats
		attempts  int
		wantErr   string
		wantRetry bool
	}{
		{name: "first try", results: []error{nil}, attempts: 1},
		{name: "429 then ok", results: []error{StatusError(ChannelPagerDuty, 429, errors.New("slow down")), nil}, attempts: 2},
		{name: "network error then ok", results: []error{errors.New("connection refused"), nil}, attempts: 2},
		{name: "400 is not retried", results: []error{StatusError(ChannelPagerDuty, 400, errors.New("invalid event"))}, attempts: 1,
			wantErr: "failed permanently on attempt 1: pagerduty: HTTP 400: invalid event"},
		{name: "5xx until attempts run out", results: []error{temporary}, attempts: 3,
			wantErr: "gave up after 3 attempts: pagerduty: HTTP 500: boom", wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, retries := 0, 0
			n, err := Retry(t.Context(), fast, func(context.Context) error {
				r := tt.results[min(calls, len(tt.results)-1)]
				calls++
				return r
			}, func(int, error, time.Duration) { retries++ })
			if n != tt.attempts || calls != tt.attempts || retries != tt.attempts-1 {
				t.Errorf("attempts = %d (calls %d, retries %d), want %d", n, calls, retries, tt.attempts)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("err = %v, want %s", err, tt.wantErr)
			}
			if err != nil && Retryable(err) != tt.wantRetry {
				t.Errorf("Retryable(%v) = %v, want %v", err, Retryable(err), tt.wantRetry)
			}
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	b := Backoff{Attempts: 10, Initial: time.Hour, Max: time.Hour}
	n, err := Retry(ctx, b, func(context.Context) error {
		cancel()
		return StatusError(ChannelSlack, 503, errors.New("unavailable"))
	}, nil)
	if n != 1 || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 1 attempt") || Retryable(err) {
		t.Fatalf("n = %d, err = %v", n, err)
	}
}

func TestDelay(t *testing.T) {
	b := Backoff{Attempts: 5, Initial: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		if got := b.delay(n, 0); got != want {
			t.Errorf("delay(%d) = %s, want %s", n, got, want)
		}
	}
	if got := b.delay(1, 700*time.Millisecond); got != 700*time.Millisecond {
		t.Errorf("delay with Retry-After = %s", got)
	}
	if got := b.delay(1, time.Minute); got != time.Second {
		t.Errorf("delay with a long Retry-After = %s, want the cap", got)
	}
}
