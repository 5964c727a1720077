package events

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// goldenMsgs is every golden event as the binary-mode message it travels in.
func goldenMsgs(t testing.TB) []*nats.Msg {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("golden events: %v", err)
	}
	var msgs []*nats.Msg
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head, body, ok := bytes.Cut(raw, []byte("\n\n"))
		if !ok {
			t.Fatalf("%s: no data", f)
		}
		m := &nats.Msg{Header: nats.Header{}, Data: body}
		for line := range strings.Lines(string(head)) {
			name, value, _ := strings.Cut(strings.TrimSpace(line), ": ")
			if name == "subject" {
				m.Subject = value
				continue
			}
			m.Header[name] = []string{value}
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// checkReadMsg holds ReadMsg, and FromMsg followed by Validate, to FromMsg
// followed by Parse and the schema validator (Validate without its quick
// path): the same event or the same error.
func checkReadMsg(t *testing.T, s *Schemas, h nats.Header, data []byte) {
	t.Helper()
	want, wantErr := FromMsg(h, data)
	if wantErr == nil {
		wantErr = s.validateData(want, nil) // FromMsg checked the attributes
	}
	got, err := s.ReadMsg(h, data)
	if errText(err) != errText(wantErr) {
		t.Fatalf("%q: ReadMsg says %v, FromMsg, Parse and the validator say %v", data, err, wantErr)
	}
	if ev, err := FromMsg(h, data); err == nil {
		if err := s.Validate(ev); errText(err) != errText(wantErr) {
			t.Fatalf("%q: Validate says %v, Parse and the validator say %v", data, err, wantErr)
		}
		if tr, ok := scanTree(ev.Data()); ok && parses(ev, &tr) {
			if _, err := Parse(ev); err != nil {
				t.Fatalf("%q: the tree says Parse accepts it, Parse says %v", data, err)
			}
		}
	}
	if wantErr != nil {
		return
	}
	gotJSON, _ := Structured(got)
	wantJSON, _ := Structured(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("ReadMsg read %s, FromMsg %s", gotJSON, wantJSON)
	}
}

// errText is err's words, sorted: the validator reports its causes, and
// the names within a cause, in no fixed order.
func errText(err error) string {
	if err == nil {
		return ""
	}
	words := strings.Fields(strings.NewReplacer("[", " ", "]", " ", ";", " ").Replace(err.Error()))
	slices.Sort(words)
	return strings.Join(words, " ")
}

// readMsgEdits change the golden commit event where the tree's reading of
// the context could differ from Parse's: each is applied alone.
var readMsgEdits = [][2]string{
	{`"timestamp": "2026-11-26T12:00:00Z"`, `"timestamp": "\u0032026-11-26T12:00:00Z"`},
	{`"timestamp": "2026-11-26T12:00:00Z"`, `"timestamp": "2026-11-26T12:00:60Z"`},
	{`"timestamp": "2026-11-26T12:00:00Z"`, `"timestamp": "2026-11-26 12:00:00Z"`},
	{`"timestamp": "2026-11-26T12:00:00Z"`, `"timestamp": "2026-11-26T12:00:00z"`},
	{`"timestamp": "2026-11-26T12:00:00Z"`, `"timestamp": 5`},
	{`"timestamp": "2026-11-26T12:00:00Z"`, `"timestamp": null`},
	{`"id": "e-commit"`, `"ID": "e-commit"`},
	{`"id": "e-commit"`, `"id": "e-other"`},
	{`"id": "e-commit"`, `"id": "e-commit", "Id": "e-other"`},
	{`"id": "e-commit"`, `"id": 7`},
	{`"id": "e-commit"`, `"id": "e-\u0063ommit"`},
	{`"source": "/rampart/test"`, `"source": "/rampart/other"`},
	{`"type": "dev.cdevents.change.merged.0.3.0"`, `"type": "dev.cdevents.change.merged.0.2.0"`},
	{`"specversion": "0.5.1"`, `"specversion": "0.4.1"`},
	{`"specversion": "0.5.1"`, `"specversion": null`},
	{`"chainId": "chain-1"`, `"chainId": ["chain-1"]`},
	{`"chainId": "chain-1"`, `"chainId": "chain-1", "extra": 1`},
	{`"links": [`, `"links": null, "x": [`},
	{`"from": {`, `"from": null, "to": {`},
	{`"contextId": "cause-1"`, `"contextId": 1`},
	{`"linkType": "PATH",`, `"linkType": "PATH", "tags": 1,`},
	{`"linkType": "PATH",`, `"linkType": "PATH", "tags": {"a": [1]},`},
	{`"linkType": "PATH",`, `"linkType": "PATH", "Target": {"contextId": "x"},`},
	{`"id": "abc123"`, `"id": 123`},
	{`"id": "abc123"`, `"id": "abc123", "Content": 1`},
	{`"content": {`, `"content": 1, "c": {`},
	{`"sha": "abc123"`, `"sha": "abc\n123"`},
	{`"customDataContentType": "application/json"`, `"customDataContentType": 1`},
	{`"customDataContentType": "application/json"`, `"customDataContentType": "application/json", "customdata": 1`},
	{`"context": {`, `"context": null, "c": {`},
	{`"context": {`, `"Context": {`},
}

// TestReadMsg checks ReadMsg against FromMsg, Parse and the validator on
// the golden events, the edits above, other content modes and data that is
// not a CDEvent.
func TestReadMsg(t *testing.T) {
	s, err := DefaultSchemas()
	if err != nil {
		t.Fatal(err)
	}
	var commit *nats.Msg
	for _, m := range goldenMsgs(t) {
		checkReadMsg(t, s, m.Header, m.Data)
		if m.Header.Get("ce-id") == "e-commit" {
			commit = m
		}
	}
	for _, e := range readMsgEdits {
		data := strings.Replace(string(commit.Data), e[0], e[1], 1)
		if data == string(commit.Data) {
			t.Fatalf("edit %q changes nothing", e)
		}
		t.Run(e[1], func(t *testing.T) { checkReadMsg(t, s, commit.Header, []byte(data)) })
	}
	for _, data := range []string{``, `{}`, `[]`, `{"context": 1}`, `not json`, `{"context":{}}`} {
		checkReadMsg(t, s, commit.Header, []byte(data))
	}
	for _, ct := range []string{"", "text/plain", "application/json; charset=utf-8", MediaBatch} {
		h := nats.Header{}
		for k, v := range commit.Header {
			h[k] = v
		}
		h.Set(HeaderContentType, ct)
		checkReadMsg(t, s, h, commit.Data)
	}
	ev, err := FromMsg(commit.Header, commit.Data)
	if err != nil {
		t.Fatal(err)
	}
	structured, err := Structured(ev)
	if err != nil {
		t.Fatal(err)
	}
	checkReadMsg(t, s, nats.Header{HeaderContentType: []string{MediaStructured}}, structured)
}

// TestReadMsgTakesEventData checks that the golden events are read once:
// the tree shows Parse would accept them and the quick check finds them
// valid, so neither Parse nor the validator runs; and that ChainID's
// scanner reads their chain id.
func TestReadMsgTakesEventData(t *testing.T) {
	s, err := DefaultSchemas()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range goldenMsgs(t) {
		ev, err := FromMsg(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := scanTree(m.Data)
		if !ok || !parses(ev, &tr) {
			t.Errorf("%s: scanned %v, but the tree does not show that Parse accepts it", ev.Type(), ok)
			continue
		}
		if sch, err := s.schemaFor(ev.Type()); err != nil || quickCheck(sch, tr.doc, 0) != valid {
			t.Errorf("%s: the quick check does not find it valid (%v)", ev.Type(), err)
		}
		if id, ok := chainIDOf(m.Data); !ok || id != ChainID(ev) || id == "" {
			t.Errorf("%s: chain id %q, scanned %v; ChainID says %q", ev.Type(), id, ok, ChainID(ev))
		}
	}
}

// FuzzReadMsg changes the data of a golden event and holds ReadMsg and
// Validate to FromMsg, Parse and the validator.
func FuzzReadMsg(f *testing.F) {
	msgs := goldenMsgs(f)
	s, err := DefaultSchemas()
	if err != nil {
		f.Fatal(err)
	}
	for i, m := range msgs {
		f.Add(uint8(i), m.Data)
		if m.Header.Get("ce-id") == "e-commit" {
			for _, e := range readMsgEdits {
				f.Add(uint8(i), []byte(strings.Replace(string(m.Data), e[0], e[1], 1)))
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		checkReadMsg(t, s, msgs[int(which)%len(msgs)].Header, data)
	})
}
