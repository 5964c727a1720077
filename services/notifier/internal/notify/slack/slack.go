// Package slack is the Slack channel: it posts a notification's message
// (notify.Message, Block Kit) to an incoming webhook.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampartci/rampart/services/notifier/internal/notify"
)

const maxResponseBytes = 4 << 10

// Config is one Slack route.
type Config struct {
	// Webhook is the incoming-webhook URL (the resolved secret).
	Webhook string
}

// Notifier posts to one incoming webhook.
type Notifier struct {
	webhook string
	client  *http.Client
	log     *slog.Logger
}

// New returns a notifier for conf. httpClient, when not nil, carries the
// requests; its timeout bounds each attempt.
func New(conf Config, logger *slog.Logger, httpClient *http.Client) (*Notifier, error) {
	u, err := url.Parse(conf.Webhook)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// The URL is a secret: never repeat it in an error.
		return nil, errors.New("slack: webhook is not an http(s) URL")
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{webhook: conf.Webhook, client: httpClient, log: logger}, nil
}

var _ notify.Notifier = (*Notifier)(nil)

// Notify implements notify.Notifier: it posts n.Message once.
func (n *Notifier) Notify(ctx context.Context, note *notify.Notification) (bool, error) {
	err := n.Post(ctx, note.Message)
	return notify.Retryable(err), err
}

// Post sends m once. Errors are *notify.Error: 429 and 5xx retryable, other
// refusals (invalid_blocks, no_service, channel_is_archived) not.
func (n *Notifier) Post(ctx context.Context, m notify.Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return &notify.Error{Channel: notify.ChannelSlack, Err: fmt.Errorf("encode message: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.webhook, bytes.NewReader(body))
	if err != nil {
		return &notify.Error{Channel: notify.ChannelSlack, Err: errors.New("build request to the webhook")}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		// *url.Error names the URL, which is the secret: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return &notify.Error{Channel: notify.ChannelSlack, Retryable: true, Err: fmt.Errorf("post to the webhook: %w", err)}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := notify.StatusError(notify.ChannelSlack, resp.StatusCode, fmt.Errorf("webhook answered %q", strings.TrimSpace(string(answer))))
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}
