package notify

import (
	"strings"
	"unicode/utf8"
)

// Message is a notification for people: blocks of text with light markup
// (mrkdwn: *bold*, `code`, _italic_), in Slack's Block Kit form, which chat
// channels post as they are (Slack) or render from the blocks. The builders
// keep every block inside Block Kit's limits, so a long report is shortened
// rather than refused.

// Block Kit limits (docs.slack.dev, reference/block-kit/blocks).
const (
	MaxBlocks       = 50
	MaxHeader       = 150
	MaxSectionText  = 3000
	MaxFields       = 10
	MaxFieldText    = 2000
	MaxContextElems = 10
	MaxFallbackText = 3000
)

// Message is the blocks, and text for notifications and clients that
// cannot show blocks.
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
