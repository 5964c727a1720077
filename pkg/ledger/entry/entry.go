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
	"time"
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
	Data            []byte `json:"data,omitempty"` // raw message bytes, base64 in JSON
}

// ErrInvalid is wrapped by every error Marshal and Unmarshal return for an
// entry that breaks the format rules.
var ErrInvalid = errors.New("invalid ledger entry")

// wire mirrors Entry but carries RecordedAt as a string, so the time format
// is exactly RFC 3339 with nanoseconds in UTC and never depends on the
// location or monotonic reading of a time.Time.
type wire struct {
	Index           uint64          `json:"index"`
	RecordedAt      string          `json:"recordedAt"`
	Subject         string          `json:"subject"`
	StreamSeq       uint64          `json:"streamSeq"`
	Kind            Kind            `json:"kind"`
	EventID         string          `json:"eventId,omitempty"`
	Source          string          `json:"source,omitempty"`
	Type            string          `json:"type,omitempty"`
	ChainID         string          `json:"chainId,omitempty"`
	Event           json.RawMessage `json:"event,omitempty"`
	Reason          string          `json:"reason,omitempty"`
	OriginalSubject string          `json:"originalSubject,omitempty"`
	Data            []byte          `json:"data,omitempty"`
}

// Validate checks the fields that each kind requires and forbids.
func (e *Entry) Validate() error {
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
		case e.Reason != "" || e.OriginalSubject != "" || len(e.Data) != 0:
			return fmt.Errorf("%w: event entry with dead-letter fields", ErrInvalid)
		}
		if !json.Valid(e.Event) {
			return fmt.Errorf("%w: event is not valid JSON", ErrInvalid)
		}
	case KindDeadLetter:
		switch {
		case e.Reason == "":
			return fmt.Errorf("%w: dead-letter entry without reason", ErrInvalid)
		case e.EventID != "" || e.Source != "" || e.Type != "" || e.ChainID != "" || len(e.Event) != 0:
			return fmt.Errorf("%w: dead-letter entry with event fields", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, e.Kind)
	}
	return nil
}

// Marshal returns the canonical JSON bytes of e: fields in declaration order,
// empty optional fields omitted, no HTML escaping, no trailing newline, the
// embedded event compacted, and recordedAt in RFC 3339 nanoseconds UTC.
func Marshal(e *Entry) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	w := wire{
		Index:           e.Index,
		RecordedAt:      e.RecordedAt.UTC().Format(time.RFC3339Nano),
		Subject:         e.Subject,
		StreamSeq:       e.StreamSeq,
		Kind:            e.Kind,
		EventID:         e.EventID,
		Source:          e.Source,
		Type:            e.Type,
		ChainID:         e.ChainID,
		Event:           e.Event,
		Reason:          e.Reason,
		OriginalSubject: e.OriginalSubject,
		Data:            e.Data,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("encoding ledger entry %d: %w", e.Index, err)
	}
	// Encode appends a newline that is not part of the canonical form.
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Unmarshal decodes canonical entry bytes. It rejects unknown fields,
// trailing data, invalid entries and any encoding that differs from what
// Marshal produces for the decoded entry (other field order, whitespace,
// escaping, time format), so that one entry has exactly one valid encoding.
func Unmarshal(b []byte) (*Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() || dec.InputOffset() != int64(len(b)) {
		return nil, fmt.Errorf("%w: trailing data after entry", ErrInvalid)
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
