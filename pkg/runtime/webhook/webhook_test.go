package webhook

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func header(auth string) http.Header {
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	return h
}

func TestAuthVerify(t *testing.T) {
	basic := func(u, p string) string {
		r := httptest.NewRequest("POST", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	tests := []struct {
		name string
		auth Auth
		got  string
		want string // "" accepts; otherwise a substring of the error
	}{
		{"bearer", Auth{Bearer: "t0k"}, "Bearer t0k", ""},
		{"bearer scheme in any case", Auth{Bearer: "t0k"}, "bearer t0k", ""},
		{"wrong bearer", Auth{Bearer: "t0k"}, "Bearer t0x", "bearer token does not match"},
		{"basic", Auth{Username: "am", Password: "pw"}, basic("am", "pw"), ""},
		{"wrong password", Auth{Username: "am", Password: "pw"}, basic("am", "px"), "basic credentials do not match"},
		{"verbatim header", Auth{Header: "Token abc"}, "Token abc", ""},
		{"wrong verbatim header", Auth{Header: "Token abc"}, "Token abd", "Authorization header does not match"},
		{"bearer and basic both accepted", Auth{Bearer: "t0k", Username: "am", Password: "pw"}, basic("am", "pw"), ""},
		{"scheme not configured", Auth{Bearer: "t0k"}, basic("am", "pw"), `scheme "Basic" is not accepted`},
		{"missing header", Auth{Bearer: "t0k"}, "", "Authorization header missing"},
		{"nothing configured", Auth{}, "Bearer ", "no credential is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.auth.Verify(header(tt.got))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			case err != nil && (!errors.Is(err, ErrUnauthorized) || Status(err) != http.StatusUnauthorized):
				t.Fatalf("err = %v: not ErrUnauthorized/401", err)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"a":1}`)
	sig := Sign(secret, body)
	if err := VerifySignature(secret, body, sig, "X-Sig"); err != nil {
		t.Fatalf("own signature refused: %v", err)
	}
	for name, tt := range map[string]struct {
		secret []byte
		body   []byte
		sig    string
		want   string
	}{
		"body changed":   {secret, []byte(`{"a":2}`), sig, "does not match the body"},
		"other secret":   {[]byte("other"), body, sig, "does not match the body"},
		"no prefix":      {secret, body, strings.TrimPrefix(sig, "sha256="), "must be sha256=<hex>"},
		"not hex":        {secret, body, "sha256=zz", "not a hex SHA-256 HMAC"},
		"short":          {secret, body, "sha256=abcd", "not a hex SHA-256 HMAC"},
		"missing":        {secret, body, "", "X-Sig header missing"},
		"no secret here": {nil, body, sig, "no signing secret"},
	} {
		t.Run(name, func(t *testing.T) {
			err := VerifySignature(tt.secret, tt.body, tt.sig, "X-Sig")
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrUnauthorized with %q", err, tt.want)
			}
		})
	}
}

func TestVerifyToken(t *testing.T) {
	if err := VerifyToken("tok", "tok", "X-Token"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range [][3]string{{"tok", "tox", "does not match"}, {"tok", "", "X-Token missing"}, {"", "", "no X-Token is configured"}} {
		if err := VerifyToken(tt[0], tt[1], "X-Token"); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tt[2]) {
			t.Errorf("VerifyToken(%q, %q) = %v, want %q", tt[0], tt[1], err, tt[2])
		}
	}
}

func TestReadBody(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader("12345"))
	if b, err := ReadBody(r, 5); err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q, %v", b, err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader("123456"))
	if _, err := ReadBody(r, 5); !errors.Is(err, ErrTooLarge) || Status(err) != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit: %v", err)
	}
	// An announced length over the limit is refused before reading.
	r = httptest.NewRequest("POST", "/", strings.NewReader("1"))
	r.ContentLength = 1 << 30
	if _, err := ReadBody(r, 5); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "announced") {
		t.Fatalf("announced: %v", err)
	}
	w := httptest.NewRecorder()
	if _, err := Read(http.MaxBytesReader(w, io.NopCloser(bytes.NewReader(make([]byte, 10))), 3), 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxBytesReader: %v", err)
	}
}

func TestDecode(t *testing.T) {
	type msg struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	tests := []struct {
		body   string
		strict bool
		want   string
	}{
		{`{"a":1,"b":"x"}`, true, ""},
		{`{"a":1,"c":2}`, false, ""},
		{`{"a":1,"c":2}`, true, `unknown field "c"`},
		{``, false, "empty body"},
		{`{"a":`, false, "truncated JSON"},
		{`{"a":"x"}`, false, "a: expected int"},
		{`{"a":1} {}`, false, "data after the JSON value"},
		{`{"a":1,}`, false, "invalid JSON at byte"},
	}
	for _, tt := range tests {
		var m msg
		err := Decode([]byte(tt.body), &m, tt.strict)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.body, err)
		case tt.want != "" && (!errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) || Status(err) != http.StatusBadRequest):
			t.Errorf("%s: err = %v, want ErrMalformed with %q", tt.body, err, tt.want)
		}
	}
}

func TestStatusAndMediaType(t *testing.T) {
	for err, want := range map[error]int{
		ErrIgnored: http.StatusAccepted, ErrUnsupported: http.StatusBadRequest, errors.New("other"): http.StatusInternalServerError,
	} {
		if got := Status(err); got != want {
			t.Errorf("Status(%v) = %d, want %d", err, got, want)
		}
	}
	if got := MediaType("Application/JSON; charset=utf-8"); got != "application/json" {
		t.Errorf("MediaType = %q", got)
	}
}
