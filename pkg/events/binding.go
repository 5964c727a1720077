package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// The CloudEvents NATS protocol binding: in binary content mode every attribute
// is a "ce-" header (percent-encoded like HTTP header values) and datacontenttype
// is the content-type header; in structured mode the whole event is the payload
// with content-type application/cloudevents+json.
const (
	headerPrefix      = "ce-"
	HeaderContentType = "content-type"
	MediaStructured   = "application/cloudevents+json"
	MediaBatch        = "application/cloudevents-batch+json"
)

// SubjectPrefix is the first token of every Rampart event subject.
const SubjectPrefix = "rampart"

// ErrMalformed wraps every failure to decode a message as a CloudEvent.
var ErrMalformed = errors.New("malformed CloudEvent message")

// SubjectOf returns the NATS subject ev travels on: rampart.<kind>.<app>, where
// app is "_" for events that name none.
func SubjectOf(ev cloudevents.Event) string {
	return SubjectPrefix + "." + KindOf(ev.Type()) + "." + SubjectToken(App(ev))
}

// SubjectToken makes s usable as one NATS subject token: characters that NATS
// gives a meaning to (., *, >, white space) become "_"; empty becomes "_".
func SubjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// ToMsg encodes ev as a binary-mode NATS message on subject. The data must be
// JSON; Nats-Msg-Id is left to the publisher.
func ToMsg(subject string, ev cloudevents.Event) (*nats.Msg, error) {
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s: %w", ev.ID(), err)
	}
	h := nats.Header{}
	set := func(name, value string) { h[headerPrefix+name] = []string{pctEncode(value)} }
	set("specversion", ev.SpecVersion())
	set("id", ev.ID())
	set("source", ev.Source())
	set("type", ev.Type())
	if !ev.Time().IsZero() {
		set("time", types.FormatTime(ev.Time()))
	}
	if ev.Subject() != "" {
		set("subject", ev.Subject())
	}
	if ev.DataSchema() != "" {
		set("dataschema", ev.DataSchema())
	}
	for name, v := range ev.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("encode %s extension %s: %w", ev.ID(), name, err)
		}
		set(name, s)
	}
	if ct := ev.DataContentType(); ct != "" {
		h[HeaderContentType] = []string{ct}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: ev.Data()}, nil
}

// FromMsg decodes a NATS message in binary or structured content mode.
func FromMsg(h nats.Header, data []byte) (cloudevents.Event, error) {
	return fromMsg(h, headerValue(h, HeaderContentType), data, false)
}

// fromMsg is FromMsg of a message whose content type is ct; jsonData says
// that data is known to be JSON.
func fromMsg(h nats.Header, ct string, data []byte, jsonData bool) (cloudevents.Event, error) {
	if strings.HasPrefix(ct, MediaBatch) {
		return cloudevents.Event{}, fmt.Errorf("%w: a batch is not one event", ErrMalformed)
	}
	if strings.HasPrefix(ct, "application/cloudevents") {
		return decodeStructured(data)
	}
	return decodeBinary(h, ct, data, jsonData)
}

func decodeBinary(h nats.Header, ct string, data []byte, jsonData bool) (cloudevents.Event, error) {
	attrs := map[string]string{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, headerPrefix) || len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return cloudevents.Event{}, fmt.Errorf("%w: header %s repeated", ErrMalformed, k)
		}
		v, err := url.PathUnescape(vs[0])
		if err != nil {
			return cloudevents.Event{}, fmt.Errorf("%w: header %s: %v", ErrMalformed, k, err)
		}
		attrs[strings.TrimPrefix(lk, headerPrefix)] = v
	}
	if sv := attrs["specversion"]; sv != "1.0" {
		if sv == "" {
			return cloudevents.Event{}, fmt.Errorf("%w: no ce-specversion header and no structured content type", ErrMalformed)
		}
		return cloudevents.Event{}, fmt.Errorf("%w: ce-specversion %q, want 1.0", ErrMalformed, sv)
	}
	ev := cloudevents.New()
	ev.SetID(attrs["id"])
	ev.SetSource(attrs["source"])
	ev.SetType(attrs["type"])
	if t, ok := attrs["time"]; ok {
		tm, err := types.ParseTime(t)
		if err != nil {
			return cloudevents.Event{}, fmt.Errorf("%w: ce-time: %v", ErrMalformed, err)
		}
		ev.SetTime(tm)
	}
	if s, ok := attrs["subject"]; ok {
		ev.SetSubject(s)
	}
	if s, ok := attrs["dataschema"]; ok {
		ev.SetDataSchema(s)
	}
	for name, v := range attrs { // in any order: each extension is set, or refused, alone
		switch name {
		case "specversion", "id", "source", "type", "time", "subject", "dataschema":
			continue
		case "datacontenttype":
			return cloudevents.Event{}, fmt.Errorf("%w: datacontenttype travels in content-type, not ce-datacontenttype", ErrMalformed)
		}
		ev.SetExtension(name, v) // a bad name is reported by Validate below
	}
	if len(data) > 0 {
		if ct == "" {
			ct = "application/json"
		}
		if err := setData(&ev, ct, data, jsonData); err != nil {
			return cloudevents.Event{}, fmt.Errorf("%w: data: %v", ErrMalformed, err)
		}
	}
	if err := ev.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: %s", ErrMalformed, oneLine(err))
	}
	return ev, nil
}

func decodeStructured(data []byte) (cloudevents.Event, error) {
	ev := cloudevents.New()
	if err := json.Unmarshal(data, &ev); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: structured event: %v", ErrMalformed, err)
	}
	if err := ev.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: %s", ErrMalformed, oneLine(err))
	}
	return ev, nil
}

// headerValue looks a header up without regard to case.
func headerValue(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// pctEncode percent-encodes a header value as the HTTP binding (§3.1.3.2)
// specifies, which the NATS binding adopts: space, double quote, percent and
// every byte outside printable ASCII become %XX of their UTF-8 encoding.
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
