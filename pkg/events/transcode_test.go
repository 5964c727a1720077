package events

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// transcoded is what the transcoder, or FromMsg, Structured and ChainID,
// make of a message.
type transcoded struct {
	id, source, typ, chainID string
	event                    []byte
}

// transcode is ReadAttributes followed by AppendStructured.
func transcode(h nats.Header, data []byte) (transcoded, bool) {
	a, ok := ReadAttributes(h)
	if !ok {
		return transcoded{}, false
	}
	out, chainID, ok := a.AppendStructured(nil, data)
	return transcoded{a.ID, a.Source, a.Type, chainID, out}, ok
}

// checkTranscode holds the transcoder to FromMsg, Structured (compacted,
// as the ledger's entry embeds it) and ChainID: whatever it reads, FromMsg
// decodes to the same attributes and event bytes. It says whether the
// transcoder took the message.
func checkTranscode(t *testing.T, h nats.Header, data []byte) bool {
	t.Helper()
	a, attrsOK := ReadAttributes(h)
	ev, err := FromMsg(h, data)
	if !attrsOK {
		return false
	}
	if err != nil {
		t.Fatalf("%v %q: ReadAttributes takes it, FromMsg refuses it: %v", h, data, err)
	}
	if a.ID != ev.ID() || a.Source != ev.Source() || a.Type != ev.Type() {
		t.Fatalf("%v: ReadAttributes read id %q source %q type %q, FromMsg %q %q %q", h, a.ID, a.Source, a.Type, ev.ID(), ev.Source(), ev.Type())
	}
	// What AppendStructured appends to, it keeps.
	prefix := []byte("prefix")
	out, chainID, ok := a.AppendStructured(slices.Clip(prefix), data)
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("AppendStructured lost its dst: %q", out)
	}
	if !ok {
		if len(out) != len(prefix) {
			t.Fatalf("AppendStructured gave up but appended %q", out[len(prefix):])
		}
		return false
	}
	want := slowTranscode(t, ev)
	got := transcoded{a.ID, a.Source, a.Type, chainID, out[len(prefix):]}
	if got.chainID != want.chainID || !bytes.Equal(got.event, want.event) {
		t.Fatalf("%v %q:\ntranscoder chain %q %s\nslow path  chain %q %s", h, data, got.chainID, got.event, want.chainID, want.event)
	}
	return true
}

// slowTranscode is what the ledger recorded of ev before the transcoder.
func slowTranscode(t *testing.T, ev cloudevents.Event) transcoded {
	t.Helper()
	structured, err := Structured(ev)
	if err != nil {
		t.Fatalf("Structured of a decoded event: %v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, structured); err != nil {
		t.Fatalf("Structured wrote invalid JSON: %v", err)
	}
	return transcoded{ev.ID(), ev.Source(), ev.Type(), ChainID(ev), compact.Bytes()}
}

// TestTranscodeHandlesRampartEvents checks that the transcoder takes, and
// gets right, every event Rampart builds: were it to give up on them, the
// ledger would silently keep the slow path.
func TestTranscodeHandlesRampartEvents(t *testing.T) {
	for name, ev := range sample(t) {
		variants := map[string]cloudevents.Event{name: ev}
		noApp := ev.Clone()
		noApp.SetExtension(AppExtension, nil)
		variants[name+"/no app"] = noApp
		local := ev.Clone()
		local.SetTime(time.Date(2026, 11, 26, 13, 0, 0, 123456000, time.FixedZone("CET", 3600)))
		variants[name+"/fraction"] = local
		for vname, ev := range variants {
			m, err := ToMsg(SubjectOf(ev), ev)
			if err != nil {
				t.Fatal(err)
			}
			m.Header.Set("Nats-Msg-Id", ev.ID())
			m.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			if !checkTranscode(t, m.Header, m.Data) {
				t.Errorf("%s: the transcoder does not take it", vname)
			}
		}
	}
	for _, m := range goldenMsgs(t) {
		if !checkTranscode(t, m.Header, m.Data) {
			t.Errorf("golden %s: the transcoder does not take it", m.Header.Get("ce-id"))
		}
	}
}

// TestTranscodeEdges runs the transcoder over messages at the edges of what
// it takes; each case says whether it must take it.
func TestTranscodeEdges(t *testing.T) {
	for _, c := range transcodeEdges {
		t.Run(c.name, func(t *testing.T) {
			h, data := c.msg()
			if got := checkTranscode(t, h, data); got != c.handled {
				t.Errorf("transcoder took it: %v, want %v", got, c.handled)
			}
		})
	}
}

// transcodeEdge is a change to a plain commit message.
type transcodeEdge struct {
	name    string
	handled bool
	headers map[string][]string // nil deletes the header
	data    string              // "" keeps the data; "-" empties it
}

func (c transcodeEdge) msg() (nats.Header, []byte) {
	h := nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {"e-1"}, "ce-source": {"/rampart/test"},
		"ce-type": {"dev.cdevents.change.merged.0.3.0"}, "ce-time": {"2026-11-26T12:00:00Z"},
		"ce-rampartapp": {"shop"}, "content-type": {"application/json"}, "Nats-Msg-Id": {"e-1"},
	}
	for k, v := range c.headers {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	data := `{"context":{"id":"e-1","chainId":"rel-1"},"subject":{"id":"x"}}`
	switch c.data {
	case "":
	case "-":
		data = ""
	default:
		data = c.data
	}
	return h, []byte(data)
}

var transcodeEdges = []transcodeEdge{
	{name: "plain", handled: true},
	{name: "no time", handled: true, headers: map[string][]string{"ce-time": nil}},
	{name: "time with offset", handled: true, headers: map[string][]string{"ce-time": {"2026-11-26T12:00:00.500+02:00"}}},
	{name: "time with trailing zeros", handled: true, headers: map[string][]string{"ce-time": {"2026-11-26T12:00:00.500000000Z"}}},
	{name: "zero time", handled: true, headers: map[string][]string{"ce-time": {"0001-01-01T00:00:00Z"}}},
	{name: "bad time", headers: map[string][]string{"ce-time": {"yesterday"}}},
	{name: "subject", handled: true, headers: map[string][]string{"ce-subject": {"%C3%A9t%C3%A9%20%3C%3E%26%E2%80%A8%22%5C%09%01"}}},
	{name: "blank subject", handled: true, headers: map[string][]string{"ce-subject": {"%20%20"}}},
	{name: "padded id", handled: true, headers: map[string][]string{"ce-id": {"%20e-1%0A"}}},
	{name: "blank id", headers: map[string][]string{"ce-id": {"%20"}}},
	{name: "bad escape", headers: map[string][]string{"ce-id": {"e%zz"}}},
	{name: "not UTF-8", headers: map[string][]string{"ce-id": {"e%ff"}}},
	{name: "dataschema", handled: true, headers: map[string][]string{"ce-dataschema": {"https://cdevents.dev/0.5.1/schema/change-merged-event"}}},
	{name: "relative dataschema", headers: map[string][]string{"ce-dataschema": {"/schema"}}},
	{name: "absolute source", handled: true, headers: map[string][]string{"ce-source": {"http://127.0.0.1:9000/hooks/github"}}},
	{name: "bare source", handled: true, headers: map[string][]string{"ce-source": {"github"}}},
	{name: "urn source", headers: map[string][]string{"ce-source": {"urn:rampart:scanner"}}},
	{name: "upper-case scheme", headers: map[string][]string{"ce-source": {"HTTP://host/x"}}},
	{name: "source with a space", headers: map[string][]string{"ce-source": {"/a%20b"}}},
	{name: "no source", headers: map[string][]string{"ce-source": nil}},
	{name: "extensions", handled: true, headers: map[string][]string{"ce-b2": {"%E2%80%A9<&>"}, "ce-a1": {""}, "ce-zz": {"z"}}},
	{name: "extension named data", handled: true, headers: map[string][]string{"ce-data": {"x"}}},
	{name: "bad extension name", headers: map[string][]string{"ce-a_b": {"x"}}},
	{name: "upper-case header", headers: map[string][]string{"CE-ID": {"e-2"}}},
	{name: "repeated header", headers: map[string][]string{"ce-id": {"e-1", "e-2"}}},
	{name: "ce-datacontenttype", headers: map[string][]string{"ce-datacontenttype": {"application/json"}}},
	{name: "no content type", handled: true, headers: map[string][]string{"content-type": nil}},
	{name: "Content-Type", handled: true, headers: map[string][]string{"content-type": nil, "Content-Type": {"application/json"}}},
	{name: "two content types", headers: map[string][]string{"Content-Type": {"application/json"}}},
	{name: "text", headers: map[string][]string{"content-type": {"text/plain"}}},
	{name: "structured", headers: map[string][]string{"content-type": {MediaStructured}}},
	{name: "no data", handled: true, data: "-"},
	{name: "not JSON", data: "{"},
	{name: "spaced data", handled: true, data: " {\n\t\"a\" : [ 1 , 2.5e-3 , -0 , true , false , null ] ,\r\n\"context\" : { \"chainId\" : \"c\" } } "},
	{name: "big numbers", handled: true, data: `{"n":123456789012345678901234567890,"f":1e400,"g":-0.000001E+99}`},
	{name: "html and separators", handled: true, data: "{\"s\":\"<a href='x'>&amp;</a>\u2028\u2029\",\"<k>\":1,\"context\":{\"chainId\":\"<&>\u2028\"}}"},
	{name: "escapes kept", handled: true, data: `{"s":"\u003c\/\"\\\b\f\n\r\t\u00e9\ud7ff","context":{"chainId":"plain"}}`},
	{name: "surrogate escape", data: `{"s":"\ud83d\ude00"}`},
	{name: "unicode", handled: true, data: `{"s":"été 😀 ∑","context":{"chainId":"relé"}}`},
	{name: "nested", handled: true, data: `{"a":{"b":[[{"c":{"context":{"chainId":"deep"}}}]]},"context":{"links":[{"from":{"contextId":"x"}}],"chainId":"c1"}}`},
	{name: "array data", handled: true, data: `[1,{"context":{"chainId":"x"}}]`},
	{name: "string data", handled: true, data: `"s"`},
	{name: "no context", handled: true, data: `{"subject":{}}`},
	{name: "context null", data: `{"context":null}`},
	{name: "chainId null", data: `{"context":{"chainId":null}}`},
	{name: "chainId number", data: `{"context":{"chainId":1}}`},
	{name: "chainId escaped", data: `{"context":{"chainId":"a\"b"}}`},
	{name: "Context", data: `{"Context":{"chainId":"x"}}`},
	{name: "chainID", data: `{"context":{"chainID":"x"}}`},
	{name: "repeated context", data: `{"context":{},"context":{"chainId":"x"}}`},
	{name: "escaped name", data: `{"\u0063ontext":{"chainId":"x"}}`},
	{name: "control character", data: "{\"s\":\"\x01\"}"},
	{name: "invalid UTF-8", data: "{\"s\":\"\xff\"}"},
	{name: "trailing data", data: `{} {}`},
	{name: "too deep", data: strings.Repeat("[", maxTranscodeDepth+1) + strings.Repeat("]", maxTranscodeDepth+1)},
}

// FuzzTranscode holds the transcoder to FromMsg, Structured and ChainID for
// any headers (one "name: value" a line) and data.
func FuzzTranscode(f *testing.F) {
	for _, m := range goldenMsgs(f) {
		f.Add(headLines(m.Header), m.Data)
	}
	for _, c := range transcodeEdges {
		h, data := c.msg()
		f.Add(headLines(h), data)
	}
	f.Fuzz(func(t *testing.T, head string, data []byte) {
		h := nats.Header{}
		for line := range strings.Lines(head) {
			name, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
			h[name] = append(h[name], value)
		}
		checkTranscode(t, h, data)
	})
}

// headLines writes h as FuzzTranscode reads it.
func headLines(h nats.Header) string {
	var b strings.Builder
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range h[name] {
			b.WriteString(name + ": " + v + "\n")
		}
	}
	return b.String()
}

// BenchmarkTranscode compares the transcoder with what it replaces in the
// ledger: FromMsg, Structured and ChainID (and the entry's compaction of
// the event), for the ledger benchmark's commit event and a larger scan.
func BenchmarkTranscode(b *testing.B) {
	commit, err := NewCommit(Meta{ID: "b0-000001", Source: "/test", ChainID: "chain-1", App: "shop",
		Time: time.Date(2025, 11, 26, 0, 0, 0, 0, time.UTC)}, Commit{Repository: "github.com/acme/shop", SHA: "abc123"})
	if err != nil {
		b.Fatal(err)
	}
	cm, err := ToMsg(SubjectOf(commit), commit)
	if err != nil {
		b.Fatal(err)
	}
	var scan *nats.Msg
	for _, m := range goldenMsgs(b) {
		if m.Header.Get("ce-id") == "e-scan" {
			scan = m
		}
	}
	for _, m := range []struct {
		name string
		msg  *nats.Msg
	}{{"commit", cm}, {"scan", scan}} {
		h, data := m.msg.Header, m.msg.Data
		b.Run(m.name+"/transcoder", func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				a, ok := ReadAttributes(h)
				if !ok {
					b.Fatal("not taken")
				}
				if buf, _, ok = a.AppendStructured(buf[:0], data); !ok {
					b.Fatal("not taken")
				}
			}
		})
		b.Run(m.name+"/FromMsg+Structured+ChainID", func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				ev, err := FromMsg(h, data)
				if err != nil {
					b.Fatal(err)
				}
				s, err := Structured(ev)
				if err != nil {
					b.Fatal(err)
				}
				_ = ChainID(ev)
				buf.Reset()
				if err := json.Compact(&buf, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
