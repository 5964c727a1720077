package events

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// The transcoder turns a binary-mode message straight into the bytes that
// Structured(FromMsg(h, data)) writes, and reads its chain id on the way, in
// one pass and without building the SDK's event. The ledger does this for
// every event it records (decision 0028, "Append fast path").
//
// Those bytes are the SDK's WriteJson (jsoniter's ConfigFastest strings:
// control characters as \n, \r, \t or \u00xx, quote and backslash escaped,
// everything else as is; the data copied as is) reformatted by
// encoding/json, which drops the whitespace, keeps every escape the text
// already has and escapes <, >, & and U+2028, U+2029. The transcoder writes
// exactly that, and only for the messages it is sure of: anything unusual
// (percent-encoded bytes that are not UTF-8, a repeated or upper-case ce-
// header, a source or dataschema outside a plain URI shape, a content type
// other than application/json, data that is not JSON or not UTF-8, deep
// nesting, a chain id it cannot read as json.Unmarshal would) is "not
// handled", and the caller takes FromMsg and Structured. It never handles
// a message that FromMsg refuses. FuzzTranscode holds the two equal.

// maxAttrExtensions is how many extension attributes the transcoder takes.
const maxAttrExtensions = 4

// maxTranscodeDepth bounds the nesting of the data the transcoder takes,
// far below encoding/json's own limit.
const maxTranscodeDepth = 500

// Attributes are the CloudEvent attributes of a binary-mode message as
// ReadAttributes reads them: ID, Source and Type are what the event that
// FromMsg decodes returns for them.
type Attributes struct {
	ID, Source, Type string

	subject    string // "" when absent
	dataschema string // "" when absent
	time       time.Time
	exts       [maxAttrExtensions]extAttr // sorted by name
	nexts      int
}

type extAttr struct{ name, value string }

// ReadAttributes reads the attributes of a binary-mode message whose data
// is JSON. ok says that FromMsg decodes the message, with these attributes
// and an application/json content type; when ok is false the message may
// still decode, or not: FromMsg says.
func ReadAttributes(h nats.Header) (a Attributes, ok bool) {
	var spec, id, source, typ, tm, subject, schema string
	var seen uint8 // bits of the attributes above, to refuse a repeat
	ctSeen := false
	for k, vs := range h {
		if len(k) >= len(headerPrefix) && strings.EqualFold(k[:len(headerPrefix)], headerPrefix) {
			if len(vs) == 0 {
				continue // FromMsg skips it too
			}
			name := k[len(headerPrefix):]
			if len(vs) != 1 || k[:len(headerPrefix)] != headerPrefix || !plainName(name) {
				return Attributes{}, false
			}
			v, ok := pathUnescape(vs[0])
			if !ok {
				return Attributes{}, false
			}
			var bit uint8
			switch name {
			case "specversion":
				bit, spec = 1, v
			case "id":
				bit, id = 2, v
			case "source":
				bit, source = 4, v
			case "type":
				bit, typ = 8, v
			case "time":
				bit, tm = 16, v
			case "subject":
				bit, subject = 32, v
			case "dataschema":
				bit, schema = 64, v
			case "datacontenttype":
				return Attributes{}, false
			default:
				if !a.addExtension(name, v) {
					return Attributes{}, false
				}
				continue
			}
			if seen&bit != 0 {
				return Attributes{}, false
			}
			seen |= bit
			continue
		}
		if len(k) == len(HeaderContentType) && strings.EqualFold(k, HeaderContentType) {
			// FromMsg takes the first value of whichever spelling it finds
			// first: only one spelling with one value is sure.
			if ctSeen || len(vs) != 1 || vs[0] != "application/json" && vs[0] != "" {
				return Attributes{}, false
			}
			ctSeen = true
			continue
		}
		if !ascii(k) {
			return Attributes{}, false
		}
	}
	if spec != "1.0" {
		return Attributes{}, false
	}
	// The SDK trims id, type, subject and dataschema; an empty id or type
	// does not validate, an empty subject or dataschema is absent.
	a.ID, a.Type = strings.TrimSpace(id), strings.TrimSpace(typ)
	a.subject, a.dataschema = strings.TrimSpace(subject), strings.TrimSpace(schema)
	if a.ID == "" || a.Type == "" || !plainURI(source, false) || a.dataschema != "" && !plainURI(a.dataschema, true) {
		return Attributes{}, false
	}
	a.Source = source
	if seen&16 != 0 {
		t, err := types.ParseTime(tm)
		if err != nil {
			return Attributes{}, false
		}
		a.time = t // the zero time is no time, as SetTime has it
	}
	return a, true
}

// addExtension adds an extension attribute in name order; false when there
// are too many, or the name is taken twice.
func (a *Attributes) addExtension(name, value string) bool {
	if a.nexts == maxAttrExtensions {
		return false
	}
	i := 0
	for i < a.nexts && a.exts[i].name < name {
		i++
	}
	if i < a.nexts && a.exts[i].name == name {
		return false
	}
	copy(a.exts[i+1:a.nexts+1], a.exts[i:a.nexts])
	a.exts[i] = extAttr{name, value}
	a.nexts++
	return true
}

// AppendStructured appends to dst the structured-mode JSON of the event
// made of a and data (FromMsg's, as Structured writes it) and returns it
// with the event's chain id (ChainID's). ok false means it is not sure of
// the data: dst is then returned as it was given, and Structured and
// ChainID of FromMsg's event say.
func (a *Attributes) AppendStructured(dst, data []byte) (out []byte, chainID string, ok bool) {
	start := len(dst)
	b := append(dst, `{"specversion":"1.0","id":`...)
	b = appendAttr(b, a.ID)
	b = append(b, `,"source":`...)
	b = appendAttr(b, a.Source)
	b = append(b, `,"type":`...)
	b = appendAttr(b, a.Type)
	if a.subject != "" {
		b = append(b, `,"subject":`...)
		b = appendAttr(b, a.subject)
	}
	if len(data) > 0 {
		b = append(b, `,"datacontenttype":"application/json"`...)
	}
	if a.dataschema != "" {
		b = append(b, `,"dataschema":`...)
		b = appendAttr(b, a.dataschema)
	}
	if !a.time.IsZero() {
		b = append(b, `,"time":"`...)
		b = a.time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		s := dataScanner{data: data, out: b}
		if !s.document() {
			return dst[:start], "", false
		}
		b, chainID = s.out, s.chainID
	}
	for _, x := range a.exts[:a.nexts] {
		b = append(b, ',', '"')
		b = append(b, x.name...)
		b = append(b, '"', ':')
		b = appendAttr(b, x.value)
	}
	return append(b, '}'), chainID, true
}

// plainName says whether an attribute name from a ce- header is one the
// transcoder takes: lower-case letters and digits (an extension name the
// SDK accepts as it stands).
func plainName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func ascii[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// pathUnescape is url.PathUnescape for a value that must be UTF-8; it
// returns s itself when there is nothing to decode.
func pathUnescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, utf8.ValidString(s)
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", false
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		b = append(b, c)
	}
	return string(b), utf8.Valid(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// plainURI says whether url.Parse reads u and its String gives back u
// itself, for a plain shape of URI reference: a path of unreserved
// characters and slashes (not starting with "//"), or, when abs says it
// must be absolute or the URI has a scheme, scheme://host[:port] and such
// a path, with a lower-case scheme and host.
func plainURI(u string, abs bool) bool {
	if u == "" {
		return false
	}
	path := u
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, rest := u[:i], u[i+3:]
		if !plainScheme(scheme) {
			return false
		}
		host := rest
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			host, path = rest[:j], rest[j:]
		} else {
			path = ""
		}
		if h, port, ok := strings.Cut(host, ":"); ok {
			if port == "" || !all(port, func(c byte) bool { return '0' <= c && c <= '9' }) {
				return false
			}
			host = h
		}
		if host == "" || !all(host, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' }) {
			return false
		}
	} else if abs || strings.HasPrefix(u, "//") {
		return false
	}
	return all(path, func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
	})
}

func plainScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	return all(s, func(c byte) bool {
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
	})
}

func all(s string, ok func(c byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// appendAttr appends s, valid UTF-8, as a JSON string the way jsoniter
// writes it and encoding/json then escapes it: \n, \r, \t and \u00xx for
// other control characters, \" and \\, \u003c, \u003e, \u0026 for <, >, &,
// and \u2028, \u2029.
func appendAttr(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonPlain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
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
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonPlain holds the ASCII bytes that a JSON string carries as they are
// after encoding/json's escaping: not control characters, quote,
// backslash, <, > or &.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// dataScanner copies JSON data to out as encoding/json reformats it: no
// whitespace, strings with their escapes as written but raw <, >, &,
// U+2028 and U+2029 escaped, numbers and literals as written. It reads the
// chain id (context.chainId of an object) on the way. It copies the data
// in runs: up to what it drops (whitespace) or replaces (a raw character
// to escape), from copied on.
type dataScanner struct {
	data    []byte
	i       int
	copied  int // data before this is in out
	out     []byte
	depth   int
	chainID string
}

// skip drops data[s.i:to] from the copy.
func (s *dataScanner) skip(to int) {
	s.out = append(s.out, s.data[s.copied:s.i]...)
	s.i, s.copied = to, to
}

// replace replaces the n bytes at s.i by with in the copy.
func (s *dataScanner) replace(n int, with ...byte) {
	s.out = append(s.out, s.data[s.copied:s.i]...)
	s.out = append(s.out, with...)
	s.i += n
	s.copied = s.i
}

// Roles of an object for the chain id.
const (
	roleNone    = iota
	roleTop     // the document: looks for "context"
	roleContext // context: looks for "chainId"
)

func (s *dataScanner) document() bool {
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '{' {
		if !s.object(roleTop) {
			return false
		}
	} else if !s.value() {
		return false
	}
	s.space()
	if s.i != len(s.data) {
		return false
	}
	s.out = append(s.out, s.data[s.copied:]...)
	return true
}

func (s *dataScanner) space() {
	j := s.i
	for j < len(s.data) {
		switch s.data[j] {
		case ' ', '\t', '\n', '\r':
			j++
			continue
		}
		break
	}
	if j > s.i {
		s.skip(j)
	}
}

func (s *dataScanner) value() bool {
	s.space()
	if s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(roleNone)
	case c == '[':
		return s.array()
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *dataScanner) literal(lit string) bool {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// object copies the object at s.i. In role roleTop it reads member
// "context", in roleContext member "chainId", as json.Unmarshal into
// ChainID's struct would; a name it would match but the scanner cannot be
// sure of (escaped, non-ASCII, another case, repeated) or a value of
// another type makes the scanner give up.
func (s *dataScanner) object(role int) bool {
	if empty, ok := s.open('}'); empty || !ok {
		return ok
	}
	found := false
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return false
		}
		name, ok := s.str()
		if !ok {
			return false
		}
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		want := ""
		switch role {
		case roleTop:
			want = "context"
		case roleContext:
			want = "chainId"
		}
		switch {
		case want == "":
			ok = s.value()
		case string(name.raw) == want && !found:
			found = true
			if s.i >= len(s.data) {
				return false
			}
			switch c := s.data[s.i]; {
			case role == roleTop && c == '{':
				ok = s.object(roleContext)
			case role == roleContext && c == '"':
				var id rawString
				id, ok = s.str()
				ok = ok && !id.escaped
				s.chainID = string(id.raw)
			default:
				return false
			}
		case name.escaped || !ascii(name.raw) || bytes.EqualFold(name.raw, []byte(want)):
			return false
		default:
			ok = s.value()
		}
		if !ok {
			return false
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

func (s *dataScanner) array() bool {
	if empty, ok := s.open(']'); empty || !ok {
		return ok
	}
	for {
		if !s.value() {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// open steps into the object or array at s.i, which closing ends, and
// says whether it is empty (and then already closed).
func (s *dataScanner) open(closing byte) (empty, ok bool) {
	if s.depth++; s.depth > maxTranscodeDepth {
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

// next steps over what follows an element: more after a comma; not more,
// but ok, after closing.
func (s *dataScanner) next(closing byte) (more, ok bool) {
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

// rawString is a string's text between its quotes, and whether it has
// escapes.
type rawString struct {
	raw     []byte
	escaped bool
}

// str copies the string at s.i: escapes as written (a \u escape of a
// surrogate makes it give up), raw <, >, &, U+2028 and U+2029 escaped.
// Control characters and invalid UTF-8 make it give up.
func (s *dataScanner) str() (rawString, bool) {
	const hex = "0123456789abcdef"
	s.i++ // "
	start := s.i
	escaped := false
	for {
		i := s.i
		for i < len(s.data) && strPlain[s.data[i]] {
			i++
		}
		s.i = i
		if i >= len(s.data) {
			return rawString{}, false
		}
		c := s.data[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				s.i++
				return rawString{s.data[start:i], escaped}, true
			case '\\':
				if !s.escape() {
					return rawString{}, false
				}
				escaped = true
				continue
			case '<', '>', '&':
				s.replace(1, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
				continue
			}
			return rawString{}, false // a control character
		}
		r, size := utf8.DecodeRune(s.data[i:])
		switch r {
		case utf8.RuneError:
			if size == 1 {
				return rawString{}, false
			}
		case '\u2028', '\u2029':
			s.replace(size, '\\', 'u', '2', '0', '2', hex[r&0xF])
			continue
		}
		s.i += size
	}
}

// strPlain holds the bytes that str copies without a look: jsonPlain's.
var strPlain = func() (t [256]bool) {
	copy(t[:], jsonPlain[:])
	return t
}()

// escape steps over the escape sequence at s.i, which str copies as it is.
func (s *dataScanner) escape() bool {
	if s.i+1 >= len(s.data) {
		return false
	}
	switch s.data[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return true
	case 'u':
		if s.i+6 > len(s.data) {
			return false
		}
		var r rune
		for _, c := range s.data[s.i+2 : s.i+6] {
			if !isHex(c) {
				return false
			}
			r = r<<4 | rune(unhex(c))
		}
		s.i += 6
		return r < 0xD800 || r > 0xDFFF
	}
	return false
}

// number steps over a number in JSON's grammar (the tree scanner's),
// copied as written.
func (s *dataScanner) number() bool {
	t := treeScanner{data: s.data, i: s.i, skim: true}
	_, ok := t.number()
	s.i = t.i
	return ok
}
