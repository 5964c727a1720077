// Package webhook is what every Rampart ingress does before it trusts a
// request: read the body within a limit, check the credential the sender is
// configured with (bearer token, basic auth, a verbatim Authorization
// header, a shared token header, or an HMAC-SHA256 signature of the body),
// and decode exactly one JSON value. Every comparison is in constant time.
// Errors wrap the sentinels below, which Status maps to an HTTP status.
package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Sentinel errors; the functions wrap them with the precise reason.
var (
	// ErrTooLarge: the body exceeds the limit (HTTP 413).
	ErrTooLarge = errors.New("webhook body too large")
	// ErrUnauthorized: missing or wrong credentials or signature (HTTP 401).
	ErrUnauthorized = errors.New("webhook authentication failed")
	// ErrMalformed: not JSON of the expected shape, or a required field is
	// missing or invalid (HTTP 400).
	ErrMalformed = errors.New("malformed webhook payload")
	// ErrUnsupported: a content type or event kind this endpoint does not
	// take (HTTP 400).
	ErrUnsupported = errors.New("unsupported webhook")
	// ErrIgnored: a valid request that asks for nothing (HTTP 202, nothing
	// published).
	ErrIgnored = errors.New("webhook ignored")
)

// Status is the HTTP status for an error wrapping one of the sentinels, and
// 500 for any other.
func Status(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrUnsupported):
		return http.StatusBadRequest
	case errors.Is(err, ErrIgnored):
		return http.StatusAccepted
	}
	return http.StatusInternalServerError
}

// ReadBody reads at most limit bytes of r's body; a longer one, announced or
// not, is ErrTooLarge.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrTooLarge, r.ContentLength, limit)
	}
	return Read(r.Body, limit)
}

// Read reads at most limit bytes from r; a longer stream is ErrTooLarge. It
// recognises http.MaxBytesReader's error too.
func Read(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, mbe.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// Auth is the credential a sender puts in its Authorization header: a bearer
// token, basic auth, or a header value compared verbatim (Harbor's
// auth_header). Any of them may be set and each is accepted; a zero Auth
// accepts nothing.
type Auth struct {
	Bearer             string // Authorization: Bearer <Bearer>
	Username, Password string // Authorization: Basic …
	Header             string // Authorization: <Header>, verbatim
}

// IsZero reports whether no credential is configured.
func (a Auth) IsZero() bool { return a.Bearer == "" && a.Username == "" && a.Header == "" }

// Verify checks h's Authorization header.
func (a Auth) Verify(h http.Header) error {
	if a.IsZero() {
		return fmt.Errorf("%w: no credential is configured for this webhook", ErrUnauthorized)
	}
	got := h.Get("Authorization")
	if got == "" {
		return fmt.Errorf("%w: Authorization header missing", ErrUnauthorized)
	}
	if a.Header != "" && Equal(got, a.Header) {
		return nil
	}
	scheme, cred, _ := strings.Cut(got, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer") && a.Bearer != "":
		if !Equal(strings.TrimSpace(cred), a.Bearer) {
			return fmt.Errorf("%w: bearer token does not match", ErrUnauthorized)
		}
		return nil
	case strings.EqualFold(scheme, "Basic") && a.Username != "":
		r := http.Request{Header: http.Header{"Authorization": {got}}}
		u, p, ok := r.BasicAuth()
		// Compare both so the timing does not tell which one failed.
		userOK, passOK := Equal(u, a.Username), Equal(p, a.Password)
		if !ok || !userOK || !passOK {
			return fmt.Errorf("%w: basic credentials do not match", ErrUnauthorized)
		}
		return nil
	case a.Header != "":
		return fmt.Errorf("%w: Authorization header does not match", ErrUnauthorized)
	}
	return fmt.Errorf("%w: Authorization scheme %q is not accepted here", ErrUnauthorized, scheme)
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// VerifyToken checks a shared token sent in the header named header (e.g.
// X-Gitlab-Token). An empty configured token never verifies.
func VerifyToken(want, got, header string) error {
	switch {
	case want == "":
		return fmt.Errorf("%w: no %s is configured for this webhook", ErrUnauthorized, header)
	case got == "":
		return fmt.Errorf("%w: %s missing", ErrUnauthorized, header)
	case !Equal(want, got):
		return fmt.Errorf("%w: %s does not match", ErrUnauthorized, header)
	}
	return nil
}

// Sign returns a signature header value for body: "sha256=" and the hex
// HMAC-SHA256 of the body under secret (GitHub's X-Hub-Signature-256 and
// Rampart's X-Rampart-Signature).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks sig, the value of the header named header, against
// the body's HMAC-SHA256 under secret. An empty secret never verifies: an
// unsigned hook is not accepted.
func VerifySignature(secret, body []byte, sig, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no signing secret is configured for this webhook", ErrUnauthorized)
	}
	if sig == "" {
		return fmt.Errorf("%w: %s header missing", ErrUnauthorized, header)
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return fmt.Errorf("%w: %s must be sha256=<hex>", ErrUnauthorized, header)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a hex SHA-256 HMAC", ErrUnauthorized, header)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match the body", ErrUnauthorized, header)
	}
	return nil
}

// Decode decodes exactly one JSON value from body into v, naming the byte
// offset or field of what is wrong; strict also refuses fields v does not
// have.
func Decode(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: empty body", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return fmt.Errorf("%w: invalid JSON at byte %d: %v", ErrMalformed, syn.Offset, err)
		case errors.As(err, &typ):
			return fmt.Errorf("%w: %s: expected %s, got JSON %s", ErrMalformed, typ.Field, typ.Type, typ.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("%w: truncated JSON", ErrMalformed)
		default:
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value at byte %d", ErrMalformed, dec.InputOffset())
	}
	return nil
}

// MediaType is a Content-Type header's media type without parameters,
// lower-cased.
func MediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(contentType))
	}
	return mt
}
