package entry

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// Head is what a verifier reads of an entry: where it sits, what it
// recorded, and the identity of its event.
type Head struct {
	Index     uint64
	StreamSeq uint64
	Kind      Kind
	// Source and EventID identify an event entry's CloudEvent; empty for a
	// dead letter.
	Source, EventID string
}

// ReadHead returns the head of the entry b, accepting exactly the bytes
// Unmarshal accepts. An event entry in canonical form whose strings are
// plain (valid UTF-8, no escapes, no U+2028 or U+2029) is checked in one
// pass without building the entry or re-encoding it: every field is checked
// to be what Marshal writes for its value, and the event to be JSON that
// json.Compact leaves as it is. Anything else goes through Unmarshal
// (FuzzReadHead holds both equal).
func ReadHead(b []byte) (Head, error) {
	if h, ok := readHead(b); ok {
		return h, nil
	}
	e, err := Unmarshal(b)
	if err != nil {
		return Head{}, err
	}
	return Head{Index: e.Index, StreamSeq: e.StreamSeq, Kind: e.Kind, Source: e.Source, EventID: e.EventID}, nil
}

// readHead is the fast path of ReadHead: ok only for bytes Unmarshal
// accepts as an event entry with this head.
func readHead(b []byte) (Head, bool) {
	s := scanner{b: b}
	var h Head
	var recordedAt, subject, typ, chainID []byte
	ok := s.lit(`{"index":`) && s.canonUint(&h.Index) &&
		s.lit(`,"recordedAt":`) && s.plainStr(&recordedAt) &&
		s.lit(`,"subject":`) && s.plainStr(&subject) &&
		s.lit(`,"streamSeq":`) && s.canonUint(&h.StreamSeq) &&
		s.lit(`,"kind":"event","eventId":`)
	if !ok {
		return Head{}, false
	}
	var id, source []byte
	if !s.plainStr(&id) || !s.lit(`,"source":`) || !s.plainStr(&source) || !s.lit(`,"type":`) || !s.plainStr(&typ) {
		return Head{}, false
	}
	if s.lit(`,"chainId":`) && (!s.plainStr(&chainID) || len(chainID) == 0) {
		return Head{}, false
	}
	if !s.lit(`,"event":`) || !s.compactObject() || !s.lit("}") || s.i != len(b) {
		return Head{}, false
	}
	if len(subject) == 0 || len(id) == 0 || len(source) == 0 || len(typ) == 0 || !canonTime(recordedAt) {
		return Head{}, false
	}
	h.Kind, h.Source, h.EventID = KindEvent, string(source), string(id)
	return h, true
}

// canonUint consumes a decimal number as strconv writes it: no sign, no
// leading zero, at most 20 digits that fit a uint64.
func (s *scanner) canonUint(v *uint64) bool {
	j := s.i
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	d := s.b[s.i:j]
	if len(d) == 0 || len(d) > 20 || (len(d) > 1 && d[0] == '0') {
		return false
	}
	var n uint64
	for _, c := range d {
		x := uint64(c - '0')
		if n > (1<<64-1-x)/10 {
			return false
		}
		n = n*10 + x
	}
	*v, s.i = n, j
	return true
}

// plainStr consumes a JSON string that appendString writes unchanged: no
// escape, no control character, valid UTF-8, no U+2028 or U+2029.
func (s *scanner) plainStr(v *[]byte) bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	j := s.i + 1
	ascii := true
	for ; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if j == len(s.b) {
		return false
	}
	str := s.b[s.i+1 : j]
	if !ascii && !plainUTF8(str) {
		return false
	}
	*v, s.i = str, j+1
	return true
}

// plainUTF8 reports whether b is valid UTF-8 without U+2028 and U+2029,
// which encoding/json escapes.
func plainUTF8(b []byte) bool {
	return utf8.Valid(b) && !bytes.Contains(b, []byte("\u2028")) && !bytes.Contains(b, []byte("\u2029"))
}

// canonTime reports whether t is a time as Marshal writes recordedAt: RFC
// 3339 with nanoseconds, in UTC, not the zero time.
func canonTime(t []byte) bool {
	if plainTime(t) {
		return true
	}
	parsed, err := time.Parse(time.RFC3339Nano, string(t))
	if err != nil || parsed.IsZero() {
		return false
	}
	var buf [40]byte
	return bytes.Equal(parsed.UTC().AppendFormat(buf[:0], time.RFC3339Nano), t)
}

// maxDepth is how deeply the fast path follows nested JSON; deeper events
// go through Unmarshal (encoding/json stops at 10,000).
const maxDepth = 512

// compactObject consumes a JSON object without insignificant white space
// (which json.Compact leaves as it is), whose strings are valid UTF-8.
func (s *scanner) compactObject() bool {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	return s.value(0)
}

// value consumes one compact JSON value.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) || depth > maxDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.list('}', func() bool { return s.jsonStr() && s.lit(":") && s.value(depth+1) })
	case c == '[':
		return s.list(']', func() bool { return s.value(depth + 1) })
	case c == '"':
		return s.jsonStr()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return false
}

// list consumes a JSON object or array from its opening character to the
// closing one: elements (elem) separated by commas, or none.
func (s *scanner) list(closing byte, elem func() bool) bool {
	s.i++
	if s.i < len(s.b) && s.b[s.i] == closing {
		s.i++
		return true
	}
	for {
		if !elem() || s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case closing:
			s.i++
			return true
		default:
			return false
		}
	}
}

// number consumes a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s.i = i
	return true
}

// jsonStr consumes a JSON string of valid UTF-8 with valid escapes.
func (s *scanner) jsonStr() bool {
	b := s.b
	if s.i >= len(b) || b[s.i] != '"' {
		return false
	}
	ascii := true
	for j := s.i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(b[s.i+1:j]) {
				return false
			}
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '\\':
			j++
			if j >= len(b) {
				return false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return false
				}
				for _, h := range b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// plainTime reports whether t is, by its bytes alone, a time as Marshal
// writes it: "YYYY-MM-DDTHH:MM:SS[.F]Z" with a year from 1970 to 9999, a
// day that exists, no leap second and a fraction of 1 to 9 digits without
// trailing zero. False only sends t to time.Parse (FuzzPlainTime).
func plainTime(t []byte) bool {
	n := len(t)
	if n < 20 || t[n-1] != 'Z' || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' {
		return false
	}
	num := func(i, j int) int {
		v := 0
		for _, c := range t[i:j] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	if year < 1970 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	if day > days {
		return false
	}
	switch {
	case n == 20:
		return true
	case t[19] != '.' || n < 22 || n > 30 || t[n-2] == '0':
		return false
	}
	return num(20, n-1) >= 0
}
