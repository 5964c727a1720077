package entry

import (
	"bytes"
	"slices"
	"strconv"
	"time"
)

// scanEvent reads an event entry in canonical form without a JSON decoder:
// the fields in their fixed order, strings without escapes, the event as the
// object up to its matching brace. It returns false for anything else (a
// dead letter, a string with an escape, another shape), which Unmarshal then
// decodes with encoding/json.
//
// It is a shortcut, not a validator: Unmarshal accepts its entry only if
// Marshal encodes it to exactly b, and the canonical encoding has one entry
// per byte string, so a scan that went wrong costs the slow path and can
// never accept bytes that the slow path would reject or read differently
// (FuzzScanMatchesDecoder checks both paths agree).
func scanEvent(b []byte) (*Entry, bool) {
	s := scanner{b: b}
	e := &Entry{}
	var recordedAt string
	ok := s.lit(`{"index":`) && s.uint(&e.Index) &&
		s.lit(`,"recordedAt":`) && s.str(&recordedAt) &&
		s.lit(`,"subject":`) && s.str(&e.Subject) &&
		s.lit(`,"streamSeq":`) && s.uint(&e.StreamSeq) &&
		s.lit(`,"kind":"event","eventId":`) && s.str(&e.EventID) &&
		s.lit(`,"source":`) && s.str(&e.Source) &&
		s.lit(`,"type":`) && s.str(&e.Type)
	if !ok {
		return nil, false
	}
	if s.lit(`,"chainId":`) && !s.str(&e.ChainID) {
		return nil, false
	}
	if !s.lit(`,"event":`) {
		return nil, false
	}
	ev, ok := s.object()
	if !ok || !s.lit("}") || s.i != len(b) {
		return nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, recordedAt)
	if err != nil {
		return nil, false
	}
	e.Kind, e.RecordedAt, e.Event = KindEvent, t, slices.Clip(slices.Clone(ev))
	return e, true
}

type scanner struct {
	b []byte
	i int
}

// lit consumes the literal l if the input continues with it.
func (s *scanner) lit(l string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(l)) {
		return false
	}
	s.i += len(l)
	return true
}

// uint consumes a decimal number.
func (s *scanner) uint(v *uint64) bool {
	j := s.i
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	n, err := strconv.ParseUint(string(s.b[s.i:j]), 10, 64)
	if err != nil {
		return false
	}
	*v, s.i = n, j
	return true
}

// str consumes a JSON string without escapes or control characters.
func (s *scanner) str(v *string) bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	j := s.i + 1
	for ; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			*v, s.i = string(s.b[s.i+1:j]), j+1
			return true
		case c == '\\' || c < 0x20:
			return false
		}
	}
	return false
}

// object consumes a JSON object up to its matching brace, minding strings,
// and returns its bytes; Marshal validates them.
func (s *scanner) object() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, false
	}
	depth, inString := 0, false
	for j := s.i; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case inString && c == '\\':
			j++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				if c != '}' {
					return nil, false
				}
				obj := s.b[s.i : j+1]
				s.i = j + 1
				return obj, true
			}
		}
	}
	return nil, false
}
