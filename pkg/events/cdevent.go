// Package events is Rampart's event contract: CloudEvents 1.0 whose data is a
// CDEvent (v0.5.1), the NATS binding that carries them, and their validation.
//
// Every Rampart event is built by a typed constructor (NewCommit, NewScanFinished,
// ...) and read back by the matching accessor (Commit, ScanFinished, ...). The
// CDEvent's subject.content holds the standard CDEvents fields; customData holds
// Rampart's full payload for the event, so consumers never reconstruct it from
// the standard projection.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

// CDEventsVersion is the CDEvents specification version Rampart emits.
const CDEventsVersion = "0.5.1"

// CDEvent is the CloudEvents data of every Rampart event, per the CDEvents
// CloudEvents binding: the CloudEvent attributes mirror context.
type CDEvent struct {
	Context               Context         `json:"context"`
	Subject               Subject         `json:"subject"`
	CustomData            json.RawMessage `json:"customData,omitempty"`
	CustomDataContentType string          `json:"customDataContentType,omitempty"`
}

// Context is the CDEvents context.
type Context struct {
	SpecVersion string    `json:"specversion"`
	ID          string    `json:"id"`
	Source      string    `json:"source"`
	Type        string    `json:"type"`
	Timestamp   time.Time `json:"timestamp"`
	SchemaURI   string    `json:"schemaUri,omitempty"`
	ChainID     string    `json:"chainId,omitempty"`
	Links       []Link    `json:"links,omitempty"`
}

// Subject is the CDEvents subject; Content's shape depends on the type.
type Subject struct {
	ID      string          `json:"id"`
	Source  string          `json:"source,omitempty"`
	Content json.RawMessage `json:"content"`
}

// Link is a CDEvents embedded link. Rampart uses PATH links whose From names
// the event that caused this one.
type Link struct {
	LinkType string         `json:"linkType"`
	From     *LinkRef       `json:"from,omitempty"`
	LinkKind string         `json:"linkKind,omitempty"`
	Target   *LinkRef       `json:"target,omitempty"`
	Tags     map[string]any `json:"tags,omitempty"`
}

// LinkRef points at another event by its context id.
type LinkRef struct {
	ContextID string `json:"contextId"`
}

// Ref names a CDEvents entity (environment, service, repository).
type Ref struct {
	ID     string `json:"id"`
	Source string `json:"source,omitempty"`
}

// Meta holds what every constructor needs beyond the payload.
type Meta struct {
	// ID is the event id. Events made from an external input derive it from
	// that input so a redelivered input becomes the same event; when empty a
	// random UUID is used.
	ID string
	// Source identifies the producer, e.g. "/rampart/scanner".
	Source string
	// Time of the occurrence; the zero value means now.
	Time time.Time
	// ChainID correlates every event of one release.
	ChainID string
	// CausedBy is the id of the event that triggered this one, recorded as a
	// CDEvents PATH link.
	CausedBy string
	// App is the application the event is about; it becomes the NATS subject's
	// last token and the "rampartapp" extension.
	App string
}

// AppExtension is the CloudEvents extension attribute carrying the application.
const AppExtension = "rampartapp"

// ErrWrongType is returned by an accessor given an event of another type.
var ErrWrongType = errors.New("event has the wrong type")

func newEvent(m Meta, typ string, subjectID string, content, custom any) (cloudevents.Event, error) {
	if m.Source == "" {
		return cloudevents.Event{}, errors.New("event source is required")
	}
	if subjectID == "" {
		return cloudevents.Event{}, fmt.Errorf("%s: subject id is required", typ)
	}
	if m.ID == "" {
		m.ID = uuid.NewString()
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Time = m.Time.UTC()
	contentJSON, err := marshal(content)
	if err != nil {
		return cloudevents.Event{}, fmt.Errorf("encode %s subject content: %w", typ, err)
	}
	cd := CDEvent{
		Context: Context{
			SpecVersion: CDEventsVersion,
			ID:          m.ID,
			Source:      m.Source,
			Type:        typ,
			Timestamp:   m.Time,
			ChainID:     m.ChainID,
		},
		Subject: Subject{ID: subjectID, Content: contentJSON},
	}
	if m.CausedBy != "" {
		cd.Context.Links = []Link{{LinkType: "PATH", From: &LinkRef{ContextID: m.CausedBy}}}
	}
	if custom != nil {
		if cd.CustomData, err = marshal(custom); err != nil {
			return cloudevents.Event{}, fmt.Errorf("encode %s custom data: %w", typ, err)
		}
		cd.CustomDataContentType = "application/json"
	}
	data, err := marshal(cd)
	if err != nil {
		return cloudevents.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}

	ev := cloudevents.New()
	ev.SetID(m.ID)
	ev.SetSource(m.Source)
	ev.SetType(typ)
	ev.SetTime(m.Time)
	if m.App != "" {
		ev.SetExtension(AppExtension, m.App)
	}
	if err := setData(&ev, "application/json", data, true); err != nil { // the encoder wrote JSON
		return cloudevents.Event{}, fmt.Errorf("set %s data: %w", typ, err)
	}
	if err := ev.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%s: %w", typ, err)
	}
	return ev, nil
}

// setData sets ev's data to the encoded bytes. JSON data stays JSON in the
// structured format ("data", not "data_base64"), so event files are readable.
// jsonData says that data is known to be JSON.
func setData(ev *cloudevents.Event, contentType string, data []byte, jsonData bool) error {
	if err := ev.SetData(contentType, data); err != nil {
		return err
	}
	if strings.HasSuffix(ev.DataMediaType(), "json") && (jsonData || validJSON(data)) {
		ev.DataBase64 = false
	}
	return nil
}

// marshal encodes v as compact JSON without HTML escaping, so the bytes are
// stable and readable.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Parse decodes the CDEvent carried by ev and checks that its context agrees
// with the CloudEvent attributes and that its version is one Rampart reads.
func Parse(ev cloudevents.Event) (*CDEvent, error) {
	if ct := ev.DataContentType(); ct != "" && ct != "application/json" {
		return nil, fmt.Errorf("event %s: data content type %q, want application/json", ev.ID(), ct)
	}
	if err := CheckVersion(ev.Type()); err != nil {
		return nil, fmt.Errorf("event %s: %w", ev.ID(), err)
	}
	var cd CDEvent
	if err := json.Unmarshal(ev.Data(), &cd); err != nil {
		return nil, fmt.Errorf("event %s: data is not a CDEvent: %w", ev.ID(), err)
	}
	switch {
	case cd.Context.ID != ev.ID():
		return nil, fmt.Errorf("event %s: CDEvent context.id %q differs from the CloudEvent id", ev.ID(), cd.Context.ID)
	case cd.Context.Type != ev.Type():
		return nil, fmt.Errorf("event %s: CDEvent context.type %q differs from the CloudEvent type %q", ev.ID(), cd.Context.Type, ev.Type())
	case cd.Context.Source != ev.Source():
		return nil, fmt.Errorf("event %s: CDEvent context.source %q differs from the CloudEvent source %q", ev.ID(), cd.Context.Source, ev.Source())
	}
	if err := checkSpecVersion(cd.Context.SpecVersion); err != nil {
		return nil, fmt.Errorf("event %s: %w", ev.ID(), err)
	}
	return &cd, nil
}

// ChainID returns the CDEvents chainId of ev, or "" when it has none or is not
// a CDEvent.
func ChainID(ev cloudevents.Event) string {
	if id, ok := chainIDOf(ev.Data()); ok {
		return id
	}
	var cd struct {
		Context struct {
			ChainID string `json:"chainId"`
		} `json:"context"`
	}
	if json.Unmarshal(ev.Data(), &cd) != nil {
		return ""
	}
	return cd.Context.ChainID
}

// App returns the application named by ev's rampartapp extension, or "".
func App(ev cloudevents.Event) string {
	v, _ := ev.Extensions()[AppExtension].(string)
	return v
}

// CausedBy returns the id of the event that ev's first PATH link names, or "".
func (cd *CDEvent) CausedBy() string {
	for _, l := range cd.Context.Links {
		if l.LinkType == "PATH" && l.From != nil {
			return l.From.ContextID
		}
	}
	return ""
}

// decodeCustom parses ev, checks its type is one of types and decodes its
// customData strictly into v.
func decodeCustom(ev cloudevents.Event, v any, types ...string) (*CDEvent, error) {
	cd, err := Parse(ev)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, t := range types {
		ok = ok || cd.Context.Type == t
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is not one of %v", ErrWrongType, cd.Context.Type, types)
	}
	if len(cd.CustomData) == 0 {
		return nil, fmt.Errorf("event %s: customData is missing", ev.ID())
	}
	dec := json.NewDecoder(bytes.NewReader(cd.CustomData))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("event %s: customData: %w", ev.ID(), err)
	}
	return cd, nil
}
