package events

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// decodeTree decodes JSON data into the tree the schema validator reads:
// map[string]any, []any, string, json.Number, bool and nil, exactly as
// jsonschema.UnmarshalJSON does. A scanner reads the usual documents
// (several times faster, a fraction of the allocations); whatever it is
// not sure of (an error, a repeated name, an escaped or non-ASCII string
// it cannot take as is, deep nesting) goes to jsonschema.UnmarshalJSON,
// so the result and every error are the validator's own.
// FuzzDecodeTree holds the two equal.
func decodeTree(data []byte) (any, error) {
	if t, ok := scanTree(data); ok {
		return t.doc, nil
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(data))
}

// tree is a document the scanner read.
type tree struct {
	doc any
	// escaped holds the strings that had escapes in the data, decoded: a
	// decoder that hands a value's raw text to a method (time.Time's
	// UnmarshalJSON) does not read them as their decoded value.
	escaped []string
}

// scanTree is decodeTree's scanner alone: ok is false where decodeTree asks
// the validator's decoder.
func scanTree(data []byte) (tree, bool) {
	s := treeScanner{data: data, text: string(data)}
	v, ok := s.document()
	return tree{doc: v, escaped: s.escaped}, ok
}

// validJSON is json.Valid(data), answered by the scanner without building a
// tree for the usual document; what the scanner does not take (escapes,
// non-ASCII strings, errors) json.Valid answers.
func validJSON(data []byte) bool {
	s := treeScanner{data: data, skim: true}
	if _, ok := s.document(); ok {
		return true
	}
	return json.Valid(data)
}

// maxTreeDepth bounds the scanner's nesting; deeper documents go to the
// validator's decoder, which has its own limit.
const maxTreeDepth = 1000

type treeScanner struct {
	data  []byte
	text  string // data, copied once: strings are taken from it without a copy each
	skim  bool   // only check the syntax: build no tree
	i     int
	depth int
	// escaped: the strings decoded from escapes, when not skimming
	escaped []string
}

func (s *treeScanner) document() (any, bool) {
	v, ok := s.value()
	if !ok {
		return nil, false
	}
	s.space()
	return v, s.i == len(s.data)
}

func (s *treeScanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *treeScanner) value() (any, bool) {
	s.space()
	if s.i >= len(s.data) {
		return nil, false
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	}
	return nil, false
}

func (s *treeScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

func (s *treeScanner) object() (any, bool) {
	var m map[string]any
	if !s.skim {
		m = map[string]any{}
	}
	ok := s.members(func(name string, _ []byte) bool {
		v, ok := s.value()
		if !ok || s.skim {
			return ok
		}
		n := len(m)
		m[name] = v
		return len(m) > n // a repeated name: the validator's decoder says what it means
	})
	if !ok {
		return nil, false
	}
	return m, true
}

// members reads the object at s.i, calling member with each member's name
// (decoded; "" when skimming) and its raw text, s.i at its value: member
// reads the value and says whether to go on.
func (s *treeScanner) members(member func(name string, raw []byte) bool) bool {
	empty, ok := s.open('}')
	if empty || !ok {
		return ok
	}
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return false
		}
		start := s.i
		name, ok := s.str()
		if !ok {
			return false
		}
		raw := s.data[start+1 : s.i-1]
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return false
		}
		s.i++
		if !member(name, raw) {
			return false
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

func (s *treeScanner) array() (any, bool) {
	var a []any
	if !s.skim {
		a = []any{}
	}
	empty, ok := s.open(']')
	if empty || !ok {
		return a, ok
	}
	for {
		v, ok := s.value()
		if !ok {
			return nil, false
		}
		if !s.skim {
			a = append(a, v)
		}
		if more, ok := s.next(']'); !more {
			return a, ok
		}
	}
}

// open steps into the object or array at s.i, which closing ends, and
// says whether it is empty (and then already closed).
func (s *treeScanner) open(closing byte) (empty, ok bool) {
	if s.depth++; s.depth > maxTreeDepth {
		return false, false
	}
	s.i++
	s.space()
	if s.i < len(s.data) && s.data[s.i] == closing {
		s.i++
		s.depth--
		return true, true
	}
	return false, true
}

// next reads what follows an element: more after a comma; not more, but ok,
// after closing.
func (s *treeScanner) next(closing byte) (more, ok bool) {
	s.space()
	if s.i >= len(s.data) {
		return false, false
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		return true, true
	case closing:
		s.i++
		s.depth--
		return false, true
	}
	return false, false
}

// str reads a string of printable ASCII without escapes; any other string
// is decoded by encoding/json, as the validator's decoder would.
func (s *treeScanner) str() (string, bool) {
	start := s.i
	s.i++ // "
	for s.i < len(s.data) {
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			if s.skim {
				return "", true
			}
			return s.text[start+1 : s.i-1], true
		case c == '\\' || c >= 0x80:
			if s.skim {
				return "", false // json.Valid says
			}
			return s.slowStr(start)
		case c < 0x20:
			return "", false
		}
		s.i++
	}
	return "", false
}

// slowStr decodes the string at start, which has escapes or non-ASCII
// bytes, with encoding/json.
func (s *treeScanner) slowStr(start int) (string, bool) {
	escaped := false
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case '\\':
			s.i += 2
			escaped = true
			continue
		case '"':
			s.i++
			var out string
			if json.Unmarshal(s.data[start:s.i], &out) != nil {
				return "", false
			}
			if escaped {
				s.escaped = append(s.escaped, out)
			}
			return out, true
		}
		s.i++
	}
	return "", false
}

// number reads a number in JSON's grammar, kept as its text.
func (s *treeScanner) number() (any, bool) {
	start := s.i
	if s.data[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.data) && s.data[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return nil, false
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	if s.skim {
		return nil, true
	}
	return json.Number(s.text[start:s.i]), true
}

func (s *treeScanner) digits() int {
	n := 0
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// chainIDOf is ChainID's reading of an event's data, when the scanner is
// sure of it: a document without escapes or non-ASCII strings (json.Valid
// and json.Unmarshal answer those), an object whose members spelt
// "context" are objects whose members spelt "chainId" are strings. Names
// that differ from those only in case make it unsure, as json.Unmarshal
// would match them.
func chainIDOf(data []byte) (id string, ok bool) {
	s := treeScanner{data: data, skim: true}
	ok = s.at('{') && s.members(func(_ string, raw []byte) bool {
		if skipped, ok := s.skipUnless(raw, "context"); skipped || !ok {
			return ok
		}
		return s.at('{') && s.members(func(_ string, raw []byte) bool {
			if skipped, ok := s.skipUnless(raw, "chainId"); skipped || !ok {
				return ok
			}
			if !s.at('"') {
				return false
			}
			start := s.i
			if _, ok := s.str(); !ok {
				return false
			}
			id = string(s.data[start+1 : s.i-1])
			return true
		})
	})
	s.space()
	return id, ok && s.i == len(s.data)
}

// at says whether the next value starts with c.
func (s *treeScanner) at(c byte) bool {
	s.space()
	return s.i < len(s.data) && s.data[s.i] == c
}

// skipUnless skips the value of a member whose raw name is not want and
// says so; a name that differs from want only in case is not ok (the
// decoders would take it for want).
func (s *treeScanner) skipUnless(raw []byte, want string) (skipped, ok bool) {
	switch {
	case string(raw) == want:
		return false, true
	case len(raw) == len(want) && strings.EqualFold(string(raw), want):
		return true, false
	}
	_, ok = s.value()
	return true, ok
}
