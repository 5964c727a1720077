package entry

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var fixedTime = time.Date(2025, 11, 26, 17, 0, 0, 123456789, time.UTC)

func eventEntry() *Entry {
	return &Entry{
		Index:      7,
		RecordedAt: fixedTime,
		Subject:    "rampart.scan.shop",
		StreamSeq:  42,
		Kind:       KindEvent,
		EventID:    "e-1",
		Source:     "/scanner",
		Type:       "dev.cdevents.testsuiterun.finished.0.3.0",
		ChainID:    "chain-1",
		Event:      json.RawMessage(`{"specversion":"1.0","id":"e-1","data":{"html":"<b>&"}}`),
	}
}

func deadLetterEntry() *Entry {
	return &Entry{
		Index:           8,
		RecordedAt:      fixedTime,
		Subject:         "rampart.deadletter.x",
		StreamSeq:       43,
		Kind:            KindDeadLetter,
		Reason:          "not a CloudEvent",
		OriginalSubject: "rampart.x.y",
		Data:            []byte("\x00garbage<>"),
	}
}

func TestMarshalCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   *Entry
		want string
	}{
		{
			name: "event",
			in:   eventEntry(),
			want: `{"index":7,"recordedAt":"2025-11-26T17:00:00.123456789Z","subject":"rampart.scan.shop","streamSeq":42,"kind":"event","eventId":"e-1","source":"/scanner","type":"dev.cdevents.testsuiterun.finished.0.3.0","chainId":"chain-1","event":{"specversion":"1.0","id":"e-1","data":{"html":"<b>&"}}}`,
		},
		{
			name: "dead letter",
			in:   deadLetterEntry(),
			want: `{"index":8,"recordedAt":"2025-11-26T17:00:00.123456789Z","subject":"rampart.deadletter.x","streamSeq":43,"kind":"deadletter","reason":"not a CloudEvent","originalSubject":"rampart.x.y","data":"AGdhcmJhZ2U8Pg=="}`,
		},
		{
			name: "non-UTC time is written in UTC",
			in: func() *Entry {
				e := eventEntry()
				e.RecordedAt = fixedTime.In(time.FixedZone("CET", 3600))
				e.ChainID = ""
				return e
			}(),
			want: `{"index":7,"recordedAt":"2025-11-26T17:00:00.123456789Z","subject":"rampart.scan.shop","streamSeq":42,"kind":"event","eventId":"e-1","source":"/scanner","type":"dev.cdevents.testsuiterun.finished.0.3.0","event":{"specversion":"1.0","id":"e-1","data":{"html":"<b>&"}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Marshal:\n got %s\nwant %s", got, tt.want)
			}
			back, err := Unmarshal(got)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			again, err := Marshal(back)
			if err != nil {
				t.Fatalf("Marshal again: %v", err)
			}
			if string(again) != tt.want {
				t.Fatalf("round trip changed bytes:\n got %s\nwant %s", again, tt.want)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, err := Marshal(eventEntry())
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"trailing newline", s + "\n"},
		{"trailing object", s + "{}"},
		{"unknown field", strings.Replace(s, `{"index":7,`, `{"index":7,"extra":1,`, 1)},
		{"whitespace", strings.Replace(s, `"index":7`, `"index": 7`, 1)},
		{"field order", strings.Replace(s, `"index":7,"recordedAt":"2025-11-26T17:00:00.123456789Z"`, `"recordedAt":"2025-11-26T17:00:00.123456789Z","index":7`, 1)},
		{"time not UTC", strings.Replace(s, `17:00:00.123456789Z`, `18:00:00.123456789+01:00`, 1)},
		{"escaped string", strings.Replace(s, `"source":"/scanner"`, `"source":"\u002fscanner"`, 1)},
		{"unknown kind", strings.Replace(s, `"kind":"event"`, `"kind":"other"`, 1)},
		{"event without id", strings.Replace(s, `"eventId":"e-1",`, ``, 1)},
		{"event with reason", strings.Replace(s, `"chainId":"chain-1",`, `"chainId":"chain-1","reason":"x",`, 1)},
		{"duplicate key", strings.Replace(s, `"subject":"rampart.scan.shop",`, `"subject":"rampart.scan.shop","subject":"rampart.scan.shop",`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Unmarshal([]byte(tt.in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Unmarshal(%q) error = %v, want ErrInvalid", tt.in, err)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(eventEntry())
	if err != nil {
		t.Fatal(err)
	}
	sig := Sign(priv, b)
	tampered := append([]byte(nil), b...)
	tampered[10] ^= 1
	tests := []struct {
		name    string
		pub     ed25519.PublicKey
		data    []byte
		sig     string
		wantErr bool
	}{
		{"good", pub, b, sig, false},
		{"missing", pub, b, "", true},
		{"not base64", pub, b, "!!", true},
		{"short", pub, b, "AAAA", true},
		{"other key", otherPub, b, sig, true},
		{"tampered data", pub, tampered, sig, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSignature(tt.pub, tt.data, tt.sig)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckSignature error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v does not wrap ErrBadSignature", err)
			}
		})
	}
}

// FuzzUnmarshal checks that whatever Unmarshal accepts re-encodes to exactly
// the same bytes, the property the Merkle leaves depend on.
func FuzzUnmarshal(f *testing.F) {
	for _, e := range []*Entry{eventEntry(), deadLetterEntry()} {
		b, err := Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := Marshal(e)
		if err != nil {
			t.Fatalf("Marshal of accepted entry: %v", err)
		}
		if string(again) != string(b) {
			t.Fatalf("accepted non-canonical bytes:\n in %q\nout %q", b, again)
		}
	})
}
