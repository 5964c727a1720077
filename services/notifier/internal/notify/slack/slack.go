// Package slack posts Block Kit messages to a Slack incoming webhook. The
// builders keep every block inside Slack's limits, so a long report is
// shortened rather than refused.
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
	"unicode/utf8"

	"github.com/rampartci/rampart/services/notifier/internal/notify"
)

// Block Kit limits (docs.slack.dev, reference/block-kit/blocks).
const (
	MaxBlocks        = 50
	MaxHeader        = 150
	MaxSectionText   = 3000
	MaxFields        = 10
	MaxFieldText     = 2000
	MaxContextElems  = 10
	MaxFallbackText  = 3000
	maxResponseBytes = 4 << 10
)

// Message is an incoming-webhook payload: blocks, and text for
// notifications and clients that cannot show blocks.
type Message struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks"`
}

// Block is one Block Kit layout block (header, section, context, divider).
type Block struct {
	Type     string `json:"type"`
	Text     *Text  `json:"text,omitempty"`
	Fields   []Text `json:"fields,omitempty"`
	Elements []Text `json:"elements,omitempty"`
}

// Text is a text object: plain_text or mrkdwn.
type Text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Header is a header block of plain text.
func Header(s string) Block {
	return Block{Type: "header", Text: &Text{Type: "plain_text", Text: truncate(oneLine(s), MaxHeader)}}
}

// Section is a section block of mrkdwn text (already escaped).
func Section(mrkdwn string) Block {
	return Block{Type: "section", Text: &Text{Type: "mrkdwn", Text: truncate(mrkdwn, MaxSectionText)}}
}

// Field is one label and value of a Fields block; the value is mrkdwn.
type Field struct{ Label, Value string }

// Fields is a section of labelled mrkdwn fields, two columns in Slack. Fields
// beyond Slack's ten are dropped.
func Fields(fs ...Field) Block {
	b := Block{Type: "section"}
	for _, f := range fs[:min(len(fs), MaxFields)] {
		b.Fields = append(b.Fields, Text{Type: "mrkdwn", Text: truncate("*"+Escape(f.Label)+"*\n"+f.Value, MaxFieldText)})
	}
	return b
}

// Context is a context block of small mrkdwn lines.
func Context(mrkdwn ...string) Block {
	b := Block{Type: "context"}
	for _, s := range mrkdwn[:min(len(mrkdwn), MaxContextElems)] {
		b.Elements = append(b.Elements, Text{Type: "mrkdwn", Text: truncate(s, MaxSectionText)})
	}
	return b
}

// Divider is a divider block.
func Divider() Block { return Block{Type: "divider"} }

// NewMessage makes a message of blocks with fallback text, keeping the
// first MaxBlocks blocks.
func NewMessage(text string, blocks ...Block) Message {
	return Message{Text: truncate(text, MaxFallbackText), Blocks: blocks[:min(len(blocks), MaxBlocks)]}
}

// Escape makes s literal in mrkdwn: Slack gives &, < and > a meaning.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Code is s as inline code.
func Code(s string) string { return "`" + strings.ReplaceAll(Escape(s), "`", "'") + "`" }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// truncate shortens s to at most n characters (Slack counts characters),
// ending in "…" when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

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

// Post sends m once. Errors are *notify.Error: 429 and 5xx retryable, other
// refusals (invalid_blocks, no_service, channel_is_archived) not.
func (n *Notifier) Post(ctx context.Context, m Message) error {
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
