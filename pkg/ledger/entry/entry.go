// Package entry defines one record of the ledger: what was consumed from the
// RAMPART stream, when, and from where, in a canonical JSON encoding.
//
// The canonical bytes of an entry are its Merkle leaf and the message that the
// ledger key signs, so they must never depend on map order, HTML escaping or
// whitespace. Unmarshal accepts only bytes that Marshal would produce for the
// same entry; anything else is rejected rather than silently normalised.
package entry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// SignatureHeader is the LEDGER stream message header that carries the
// base64 Ed25519 signature over the entry bytes (the message data).
const SignatureHeader = "Rampart-Ledger-Signature"

// Kind says what an entry recorded.
type Kind string

const (
	// KindEvent is a CloudEvent consumed from the RAMPART stream.
	KindEvent Kind = "event"
	// KindDeadLetter is a raw message dead-lettered by a consumer.
	KindDeadLetter Kind = "deadletter"
)

// Entry is one ledger record. The field order here is the order of the
// canonical JSON encoding; do not reorder fields.
type Entry struct {
	// Index is the 0-based position of the entry in the Merkle tree.
	Index uint64 `json:"index"`
	// RecordedAt is when the ledger recorded the message (UTC).
	RecordedAt time.Time `json:"recordedAt"`
	// Subject is the NATS subject the message was consumed from.
	Subject string `json:"subject"`
	// StreamSeq is the message's sequence in the RAMPART stream.
	StreamSeq uint64 `json:"streamSeq"`
	// Kind is KindEvent or KindDeadLetter.
	Kind Kind `json:"kind"`

	// Event fields.
	EventID string          `json:"eventId,omitempty"`
	Source  string          `json:"source,omitempty"`
	Type    string          `json:"type,omitempty"`
	ChainID string          `json:"chainId,omitempty"`
	Event   json.RawMessage `json:"event,omitempty"` // structured-mode CloudEvent JSON

	// Dead-letter fields.
	Reason          string `json:"reason,omitempty"`
	OriginalSubject string `json:"originalSubject,omitempty"`
	// Headers are the dead-lettered message's headers other than the ones
	// recorded above and JetStream's own (Nats-*): the ce-* attributes the
	// poison message claimed, its content-type, and the bus's
	// Rampart-Original-Sequence and Rampart-Consumer. Values are as
	// received (still percent-encoded), in their original order; names are
	// sorted in the encoding. A name must have at least one value.
	Headers map[string][]string `json:"headers,omitempty"`
	Data    []byte              `json:"data,omitempty"` // raw message bytes, base64 in JSON
}

// ErrInvalid is wrapped by every error Marshal and Unmarshal return for an
// entry that breaks the format rules.
var ErrInvalid = errors.New("invalid ledger entry")

// wire mirrors Entry but carries RecordedAt as a string, so the time format
// is exactly RFC 3339 with nanoseconds in UTC and never depends on the
// location or monotonic reading of a time.Time.
type wire struct {
	Index           uint64              `json:"index"`
	RecordedAt      string              `json:"recordedAt"`
	Subject         string              `json:"subject"`
	StreamSeq       uint64              `json:"streamSeq"`
	Kind            Kind                `json:"kind"`
	EventID         string              `json:"eventId,omitempty"`
	Source          string              `json:"source,omitempty"`
	Type            string              `json:"type,omitempty"`
	ChainID         string              `json:"chainId,omitempty"`
	Event           json.RawMessage     `json:"event,omitempty"`
	Reason          string              `json:"reason,omitempty"`
	OriginalSubject string              `json:"originalSubject,omitempty"`
	Headers         map[string][]string `json:"headers,omitempty"`
	Data            []byte              `json:"data,omitempty"`
}

// Validate checks the fields that each kind requires and forbids.
func (e *Entry) Validate() error {
	if err := e.validateFields(); err != nil {
		return err
	}
	if e.Kind == KindEvent && !json.Valid(e.Event) {
		return fmt.Errorf("%w: event is not valid JSON", ErrInvalid)
	}
	return nil
}

// validateFields is Validate without the JSON check of the event, which
// Marshal does while it compacts the event.
func (e *Entry) validateFields() error {
	if e.Subject == "" {
		return fmt.Errorf("%w: subject is empty", ErrInvalid)
	}
	if e.RecordedAt.IsZero() {
		return fmt.Errorf("%w: recordedAt is zero", ErrInvalid)
	}
	switch e.Kind {
	case KindEvent:
		switch {
		case e.EventID == "":
			return fmt.Errorf("%w: event entry without eventId", ErrInvalid)
		case e.Source == "":
			return fmt.Errorf("%w: event entry without source", ErrInvalid)
		case e.Type == "":
			return fmt.Errorf("%w: event entry without type", ErrInvalid)
		case len(e.Event) == 0:
			return fmt.Errorf("%w: event entry without event", ErrInvalid)
		case e.Reason != "" || e.OriginalSubject != "" || len(e.Headers) != 0 || len(e.Data) != 0:
			return fmt.Errorf("%w: event entry with dead-letter fields", ErrInvalid)
		}
	case KindDeadLetter:
		switch {
		case e.Reason == "":
			return fmt.Errorf("%w: dead-letter entry without reason", ErrInvalid)
		case e.EventID != "" || e.Source != "" || e.Type != "" || e.ChainID != "" || len(e.Event) != 0:
			return fmt.Errorf("%w: dead-letter entry with event fields", ErrInvalid)
		}
		for name, values := range e.Headers {
			switch {
			case name == "":
				return fmt.Errorf("%w: header with an empty name", ErrInvalid)
			case len(values) == 0:
				return fmt.Errorf("%w: header %q without values", ErrInvalid, name)
			}
		}
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, e.Kind)
	}
	return nil
}

// Marshal returns the canonical JSON bytes of e: fields in declaration order,
// empty optional fields omitted, header names sorted, no HTML escaping, no
// trailing newline, the embedded event compacted, and recordedAt in RFC 3339
// nanoseconds UTC.
//
// The bytes are exactly what encoding/json writes for the wire struct with
// HTML escaping off (the tests check this against encoding/json); they are
// written by hand because the ledger encodes every entry it records, and
// reflection plus validating the event twice was a large part of that cost.
func Marshal(e *Entry) ([]byte, error) {
	return marshal(e, false)
}

// MarshalCompactEvent is Marshal for an entry whose event is known to be
// valid JSON in compact form, exactly as Marshal's compaction writes it:
// the event is copied as it is, without that second pass over it. The
// ledger's transcoder (events.Attributes.AppendStructured) writes events
// so. Given an event in any other form it writes bytes that Marshal would
// not, which Unmarshal then rejects.
func MarshalCompactEvent(e *Entry) ([]byte, error) {
	return marshal(e, true)
}

func marshal(e *Entry, compactEvent bool) ([]byte, error) {
	if err := e.validateFields(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(256 + len(e.Event) + len(e.Subject) + len(e.Reason) + base64.StdEncoding.EncodedLen(len(e.Data)))
	b := buf.AvailableBuffer()
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	b = append(b, `,"recordedAt":`...)
	// RFC 3339 is digits and "-:.TZ": nothing to escape.
	b = append(b, '"')
	b = e.RecordedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = append(b, `,"subject":`...)
	b = appendString(b, e.Subject)
	b = append(b, `,"streamSeq":`...)
	b = strconv.AppendUint(b, e.StreamSeq, 10)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(e.Kind))
	b = appendField(b, "eventId", e.EventID)
	b = appendField(b, "source", e.Source)
	b = appendField(b, "type", e.Type)
	b = appendField(b, "chainId", e.ChainID)
	if len(e.Event) != 0 && compactEvent {
		b = append(b, `,"event":`...)
		b = append(b, e.Event...)
	} else if len(e.Event) != 0 {
		b = append(b, `,"event":`...)
		buf.Write(b)
		// Compact validates the event as it copies it, as encoding/json
		// does for a json.RawMessage.
		if err := json.Compact(&buf, e.Event); err != nil {
			return nil, fmt.Errorf("%w: event is not valid JSON: %w", ErrInvalid, err)
		}
		b = buf.AvailableBuffer()
	}
	b = appendField(b, "reason", e.Reason)
	b = appendField(b, "originalSubject", e.OriginalSubject)
	if len(e.Headers) != 0 {
		b = append(b, `,"headers":{`...)
		for i, name := range slices.Sorted(maps.Keys(e.Headers)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, name)
			b = append(b, ':', '[')
			for j, v := range e.Headers[name] {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if len(e.Data) != 0 {
		b = append(b, `,"data":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Data)
		b = append(b, '"')
	}
	b = append(b, '}')
	buf.Write(b)
	return buf.Bytes(), nil
}

// appendField appends `,"name":"value"` unless value is empty (omitempty).
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString appends s as a JSON string exactly as encoding/json does with
// HTML escaping off: quote, backslash and control characters escaped (\b,
// \f, \n, \r, \t or \u00XX), invalid UTF-8 replaced by \ufffd, and U+2028
// and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Unmarshal decodes canonical entry bytes. It rejects unknown fields,
// trailing data, invalid entries and any encoding that differs from what
// Marshal produces for the decoded entry (other field order, whitespace,
// escaping, time format, repeated fields), so that one entry has exactly one
// valid encoding.
//
// Unknown fields, trailing whitespace and repeated fields are caught by the
// comparison with Marshal's bytes (they do not survive decoding), which is
// why the decoding itself can be plain json.Unmarshal: a json.Decoder with
// DisallowUnknownFields cost three times as much. An event entry in the
// usual shape is read by scanEvent without a decoder at all.
func Unmarshal(b []byte) (*Entry, error) {
	if e, ok := scanEvent(b); ok {
		if canon, err := Marshal(e); err == nil && bytes.Equal(canon, b) {
			return e, nil
		}
	}
	return decode(b)
}

// decode is Unmarshal through encoding/json.
func decode(b []byte) (*Entry, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t, err := time.Parse(time.RFC3339Nano, w.RecordedAt)
	if err != nil {
		return nil, fmt.Errorf("%w: recordedAt: %w", ErrInvalid, err)
	}
	e := &Entry{
		Index:           w.Index,
		RecordedAt:      t,
		Subject:         w.Subject,
		StreamSeq:       w.StreamSeq,
		Kind:            w.Kind,
		EventID:         w.EventID,
		Source:          w.Source,
		Type:            w.Type,
		ChainID:         w.ChainID,
		Event:           w.Event,
		Reason:          w.Reason,
		OriginalSubject: w.OriginalSubject,
		Headers:         w.Headers,
		Data:            w.Data,
	}
	canon, err := Marshal(e)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: bytes are not in canonical form", ErrInvalid)
	}
	return e, nil
}

// Sign returns the base64 Ed25519 signature over the entry bytes b, the value
// of the SignatureHeader.
//
// Entry bytes are a JSON object and never end in a newline, while every signed
// checkpoint note text does, so an entry signature can never be replayed as a
// checkpoint signature or the other way round, although one key signs both.
func Sign(key ed25519.PrivateKey, b []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))
}

// ErrBadSignature is returned by CheckSignature when the signature is
// missing, malformed or does not verify.
var ErrBadSignature = errors.New("bad entry signature")

// CheckSignature verifies the base64 signature sig over the entry bytes b.
func CheckSignature(pub ed25519.PublicKey, b []byte, sig string) error {
	if sig == "" {
		return fmt.Errorf("%w: missing %s", ErrBadSignature, SignatureHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: not base64: %w", ErrBadSignature, err)
	}
	if len(raw) != ed25519.SignatureSize || !ed25519.Verify(pub, b, raw) {
		return fmt.Errorf("%w: does not verify with the ledger key", ErrBadSignature)
	}
	return nil
}
