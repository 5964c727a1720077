package events

import (
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// ReadMsg is FromMsg followed by Validate, with their results and errors,
// for a reader of the stream that checks every event: a binary-mode event's
// data is read once for the JSON check, the CDEvent's context and the
// schema.
func ReadMsg(h nats.Header, data []byte) (cloudevents.Event, error) {
	s, err := DefaultSchemas()
	if err != nil {
		return cloudevents.Event{}, err
	}
	return s.ReadMsg(h, data)
}

// ReadMsg is the package-level ReadMsg with these schemas.
func (s *Schemas) ReadMsg(h nats.Header, data []byte) (cloudevents.Event, error) {
	ct := headerValue(h, HeaderContentType)
	var t tree
	scanned := false
	if !strings.HasPrefix(ct, "application/cloudevents") { // binary mode: the data is the CDEvent
		t, scanned = scanTree(data)
	}
	ev, err := fromMsg(h, ct, data, scanned)
	if err != nil {
		return cloudevents.Event{}, err
	}
	if scanned {
		err = s.validateData(ev, &t) // fromMsg checked the attributes
	} else {
		err = s.Validate(ev)
	}
	if err != nil {
		return cloudevents.Event{}, err
	}
	return ev, nil
}

// parses says whether Parse accepts ev, whose data the scanner read as t,
// without decoding the data into a CDEvent: the data holds only the
// CDEvent's fields, each of a type its field takes, a timestamp Go reads,
// and a context that agrees with the attributes. It says so only when
// sure; Parse decides, and words the error, in every other case.
// FuzzReadMsg holds it to Parse.
func parses(ev cloudevents.Event, t *tree) bool {
	if ct := ev.DataContentType(); ct != "" && ct != "application/json" {
		return false
	}
	if CheckVersion(ev.Type()) != nil {
		return false
	}
	doc, ok := t.doc.(map[string]any)
	if !ok {
		return false
	}
	cx, ok := doc["context"].(map[string]any)
	if !ok {
		return false
	}
	// Only the names exactly as spelt: json.Unmarshal would match others
	// without regard to case.
	ok = fields(doc, func(name string, v any) bool {
		switch name {
		case "context", "customData":
			return true
		case "customDataContentType":
			return isString(v)
		case "subject":
			return fields(v, func(name string, v any) bool {
				return name == "content" || (name == "id" || name == "source") && isString(v)
			})
		}
		return false
	}) && fields(cx, func(name string, v any) bool {
		switch name {
		case "specversion", "id", "source", "type", "schemaUri", "chainId":
			return isString(v)
		case "timestamp":
			ts, ok := v.(string)
			var tm time.Time
			// time.Time decodes the string's text as it stands in the data
			return ok && !slices.Contains(t.escaped, ts) && tm.UnmarshalText([]byte(ts)) == nil
		case "links":
			links, ok := v.([]any)
			return ok && !slices.ContainsFunc(links, func(l any) bool { return !fields(l, linkField) })
		}
		return false
	})
	if !ok {
		return false
	}
	sv, _ := cx["specversion"].(string)
	return cx["id"] == ev.ID() && cx["type"] == ev.Type() && cx["source"] == ev.Source() && checkSpecVersion(sv) == nil
}

// linkField says whether a Link decodes name's value v.
func linkField(name string, v any) bool {
	switch name {
	case "linkType", "linkKind":
		return isString(v)
	case "from", "target":
		return fields(v, func(name string, v any) bool { return name == "contextId" && isString(v) })
	case "tags":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

// fields says whether v is an object whose every field passes field.
func fields(v any, field func(name string, v any) bool) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for name, fv := range obj {
		if !field(name, fv) {
			return false
		}
	}
	return true
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}
