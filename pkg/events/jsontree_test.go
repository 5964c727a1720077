package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// FuzzDecodeTree holds decodeTree's scanner equal to the schema validator's
// own decoder: a document the scanner accepts decodes to the same tree, and
// one it refuses is the decoder's to answer.
func FuzzDecodeTree(f *testing.F) {
	for _, s := range []string{
		`{"context":{"id":"a","source":"/x","type":"t","timestamp":"2026-01-01T00:00:00Z","links":[]},"subject":{"content":{"n":-1.5e+3,"z":0,"b":true,"f":false,"u":null}}}`,
		`[]`, `{}`, `[1,[2,[3]],{"a":{}}]`, ` "x" `, `"caf\u00e9 \"q\" ünï"`, "\"\xff\"", `{"a":1,"a":2}`,
		`01`, `1.`, `-`, `1e`, `.5`, `tru`, `nul`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `{} x`, `1 2`, ``, "\"\x01\"",
		`{"\u0061":1,"a":2}`, `"\ud800"`, `"\`, `123456789012345678901234567890`, `-0.0E-0`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := treeScanner{data: data, text: string(data)}
		got, ok := s.document()
		want, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		skim := treeScanner{data: data, skim: true}
		if _, valid := skim.document(); valid && !json.Valid(data) {
			t.Fatalf("skimming accepted %q, json.Valid refuses it", data)
		}
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("scanner accepted %q, the decoder refused it: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanner %#v, decoder %#v", data, got, want)
		}
	})
}

// TestDecodeTreeTakesEventData checks that the scanner, not the fallback,
// reads the data of the events Rampart writes.
func TestDecodeTreeTakesEventData(t *testing.T) {
	ev, err := NewCommit(Meta{ID: "c-1", Source: "/t", ChainID: "rel-1", App: "shop"}, Commit{Repository: "github.com/acme/shop", SHA: "abc123", Message: "fix: naïve \"quote\"\n"})
	if err != nil {
		t.Fatal(err)
	}
	s := treeScanner{data: ev.Data(), text: string(ev.Data())}
	if _, ok := s.document(); !ok {
		t.Fatalf("scanner refused %s", ev.Data())
	}
}

// BenchmarkDecodeTree decodes an event's data with the scanner and with the
// validator's own decoder, in the same run.
func BenchmarkDecodeTree(b *testing.B) {
	ev, err := NewCommit(Meta{ID: "c-1", Source: "/bench", ChainID: "rel-1", App: "shop"}, Commit{Repository: "github.com/acme/shop", SHA: "abc123"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scanner", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeTree(ev.Data()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("validator-decoder", func(b *testing.B) {
		for b.Loop() {
			if _, err := jsonschema.UnmarshalJSON(bytes.NewReader(ev.Data())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzChainID holds ChainID's scanner to json.Unmarshal's reading of the
// context's chainId.
func FuzzChainID(f *testing.F) {
	for _, s := range []string{
		`{"context":{"id":"a","chainId":"rel-1","links":[{"from":{"contextId":"x"}}]},"subject":{"content":{"n":1}}}`,
		` { "context" : { "chainId" : "c" } } `, `{"context":{}}`, `{}`, `[]`, `null`, `{"context":null}`,
		`{"context":{"chainId":null}}`, `{"context":{"chainId":5}}`, `{"context":1}`, `{"Context":{"chainId":"c"}}`,
		`{"context":{"chainid":"c"}}`, `{"context":{"chainId":"a","chainId":"b"}}`, `{"context":{"chainId":"a"},"context":{}}`,
		`{"context":{"chainId":"a\nb"}}`, `{"context":{"chainId":"é"}}`, `{"context":{"chainId":"a"}} x`, `{"x":"\u00e9","context":{"chainId":"a"}}`,
		`{"context":{"chainId":"a"},"x":[1,}`, `{"CONTEXT":1,"context":{"chainId":"a"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ok := chainIDOf(data)
		if !ok {
			return
		}
		var cd struct {
			Context struct {
				ChainID string `json:"chainId"`
			} `json:"context"`
		}
		if err := json.Unmarshal(data, &cd); err != nil || cd.Context.ChainID != id {
			t.Fatalf("%q: scanner %q, json.Unmarshal %q (%v)", data, id, cd.Context.ChainID, err)
		}
	})
}
