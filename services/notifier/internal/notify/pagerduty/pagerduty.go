// Package pagerduty pages through PagerDuty's Events API v2 with
// github.com/PagerDuty/go-pagerduty, classifying its answers for retries:
// 202 is delivered, 429 and 5xx may be retried, 400 (an invalid event) never.
package pagerduty

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/rampartci/rampart/services/notifier/internal/notify"
)

// DefaultEndpoint is the Events API v2 base URL; go-pagerduty posts to
// <endpoint>/v2/enqueue.
const DefaultEndpoint = "https://events.pagerduty.com"

const enqueuePath = "/v2/enqueue"

// Limits of the Events API v2.
const (
	MaxSummary  = 1024
	MaxDedupKey = 255
)

// Severities the Events API v2 accepts.
var Severities = []string{"critical", "error", "warning", "info"}

// Config is one PagerDuty route.
type Config struct {
	// RoutingKey is the integration key (the resolved secret).
	RoutingKey string
	// Severity of triggered alerts; default critical.
	Severity string
	// Endpoint is the Events API base URL, or its full .../v2/enqueue URL;
	// empty means DefaultEndpoint.
	Endpoint string
}

// Notifier triggers PagerDuty alerts.
type Notifier struct {
	client     *pd.Client
	endpoint   string
	routingKey string
	severity   string
	log        *slog.Logger
}

// New returns a notifier for conf. httpClient, when not nil, carries the
// requests (tests, proxies); its timeout bounds each attempt.
func New(conf Config, logger *slog.Logger, httpClient *http.Client) (*Notifier, error) {
	if conf.RoutingKey == "" {
		return nil, errors.New("pagerduty: routing key is empty")
	}
	if conf.Severity == "" {
		conf.Severity = "critical"
	}
	if !slices.Contains(Severities, conf.Severity) {
		return nil, fmt.Errorf("pagerduty: severity %q is not one of %s", conf.Severity, strings.Join(Severities, ", "))
	}
	endpoint, err := normalizeEndpoint(conf.Endpoint)
	if err != nil {
		return nil, err
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	client := pd.NewClient("", pd.WithV2EventsAPIEndpoint(endpoint))
	client.HTTPClient = &capturingClient{c: httpClient}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{client: client, endpoint: endpoint, routingKey: conf.RoutingKey, severity: conf.Severity, log: logger}, nil
}

// normalizeEndpoint accepts a base URL or the full enqueue URL.
func normalizeEndpoint(s string) (string, error) {
	if s == "" {
		return DefaultEndpoint, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("pagerduty: endpoint %q is not an http(s) URL", s)
	}
	s = strings.TrimSuffix(strings.TrimRight(s, "/"), enqueuePath)
	return strings.TrimRight(s, "/"), nil
}

// Alert is one trigger event.
type Alert struct {
	// DedupKey names the alert; triggers with the same key are one alert.
	DedupKey string
	Summary  string
	// Source is where the problem is, e.g. "shop (prod)".
	Source    string
	Component string
	Group     string
	Class     string
	Timestamp time.Time
	// Severity overrides the configured severity.
	Severity string
	// Details becomes payload.custom_details; it must encode as a JSON object.
	Details any
}

// DedupKey makes id usable as a dedup key: itself when short enough,
// otherwise its SHA-256.
func DedupKey(id string) string {
	if len(id) <= MaxDedupKey {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TicketURI names the alert of dedupKey: the Events API endpoint with the key.
// The Events API answers with the key, not an incident id, so this is the
// alert's identity as PagerDuty knows it.
func (n *Notifier) TicketURI(dedupKey string) string {
	return n.endpoint + enqueuePath + "?dedup_key=" + url.QueryEscape(dedupKey)
}

var _ notify.Notifier = (*Notifier)(nil)

// Notify implements notify.Notifier: it triggers the alert n.Key once.
func (n *Notifier) Notify(ctx context.Context, note *notify.Notification) (bool, error) {
	_, err := n.Trigger(ctx, Alert{
		DedupKey:  note.Key,
		Summary:   note.Summary,
		Source:    note.Source,
		Component: note.Component,
		Group:     note.Group,
		Class:     note.Class,
		Timestamp: note.Time,
		Severity:  note.Severity,
		Details:   note.Details,
	})
	return notify.Retryable(err), err
}

// Trigger sends a trigger event once. Errors are *notify.Error, retryable
// or not.
func (n *Notifier) Trigger(ctx context.Context, a Alert) (*pd.V2EventResponse, error) {
	sev := a.Severity
	if sev == "" {
		sev = n.severity
	}
	ev := &pd.V2Event{
		RoutingKey: n.routingKey,
		Action:     "trigger",
		DedupKey:   DedupKey(a.DedupKey),
		Client:     "Rampart",
		Payload: &pd.V2Payload{
			Summary:   Truncate(a.Summary, MaxSummary),
			Source:    a.Source,
			Severity:  sev,
			Component: a.Component,
			Group:     a.Group,
			Class:     a.Class,
			Details:   a.Details,
		},
	}
	if !a.Timestamp.IsZero() {
		ev.Payload.Timestamp = a.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	var got answer
	resp, err := n.client.ManageEventWithContext(withAnswer(ctx, &got), ev)
	if err == nil {
		return resp, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	if got.status == 0 {
		// No answer: the request never reached PagerDuty, or the
		// connection broke. Sending it again is safe: same dedup key.
		return nil, &notify.Error{Channel: notify.ChannelPagerDuty, Retryable: true, Err: err}
	}
	if got.status >= 200 && got.status < 300 {
		// Accepted, but the answer was not the JSON we expected: the
		// event is enqueued all the same.
		n.log.Warn("PagerDuty accepted the event with an unreadable answer", "status", got.status, "err", err)
		return &pd.V2EventResponse{Status: "success", DedupKey: ev.DedupKey}, nil
	}
	e := notify.StatusError(notify.ChannelPagerDuty, got.status, errors.New(got.reason(err)))
	e.RetryAfter = got.retryAfter
	return nil, e
}

// Truncate shortens s to at most n bytes of valid UTF-8, ending in "…" when
// it cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := n - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// answer is what the capturing client saw of PagerDuty's response. go-pagerduty
// reads Events API error bodies as REST API errors and so drops their
// message; the dead-letter reason should say why PagerDuty refused an event.
type answer struct {
	status     int
	body       []byte
	retryAfter time.Duration
}

// reason is PagerDuty's own explanation ({"status","message","errors"}),
// or go-pagerduty's error when the body has none.
func (a answer) reason(fallback error) string {
	var pe struct {
		Status  string   `json:"status"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	if json.Unmarshal(a.body, &pe) == nil && (pe.Message != "" || len(pe.Errors) > 0) {
		s := strings.TrimSpace(pe.Status + ": " + pe.Message)
		if len(pe.Errors) > 0 {
			s += ": " + strings.Join(pe.Errors, "; ")
		}
		return s
	}
	if body := strings.TrimSpace(string(a.body)); body != "" {
		return Truncate(body, 200)
	}
	return fallback.Error()
}

type answerKey struct{}

func withAnswer(ctx context.Context, a *answer) context.Context {
	return context.WithValue(ctx, answerKey{}, a)
}

// capturingClient is go-pagerduty's HTTPClient: it records the status,
// Retry-After and (for errors) the body of each response in the answer the
// request's context carries, and hands go-pagerduty an unread copy.
type capturingClient struct{ c *http.Client }

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 64 << 10

func (cc *capturingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := cc.c.Do(req)
	a, _ := req.Context().Value(answerKey{}).(*answer)
	if err != nil || a == nil {
		return resp, err
	}
	a.status = resp.StatusCode
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			a.retryAfter = time.Duration(secs) * time.Second
		}
	}
	if resp.StatusCode >= 300 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		a.body = body
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
}
