// Package hooks decodes and authenticates the alerts the watcher receives:
// Alertmanager's webhook (version 4) and Rampart's SIEM alert. The functions
// are pure, bytes and headers in, typed alerts or an error out; every error
// wraps one of the sentinels below, which the HTTP layer maps to a status.
package hooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinel errors; the parsers wrap them with the precise reason.
var (
	// ErrTooLarge: the body exceeds the limit (HTTP 413).
	ErrTooLarge = errors.New("webhook body too large")
	// ErrUnauthorized: missing or wrong credentials or signature (HTTP 401).
	ErrUnauthorized = errors.New("webhook authentication failed")
	// ErrMalformed: not JSON of the expected shape, or a required field is
	// missing or invalid (HTTP 400).
	ErrMalformed = errors.New("malformed webhook payload")
)

// MaxBody is the largest webhook body accepted. Alertmanager batches a
// group's alerts into one request; a thousand alerts with labels and
// annotations fit well within it.
const MaxBody = 1 << 20

// ReadBody reads at most limit bytes; a longer body is ErrTooLarge. It
// recognises http.MaxBytesReader's error too.
func ReadBody(r io.Reader, limit int64) ([]byte, error) {
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

// Auth is the credential Alertmanager's http_config sends: a bearer token
// (authorization: {credentials: …}, or the older bearer_token) or basic
// auth (basic_auth: {username, password}). Either or both may be set; a zero
// Auth accepts nothing.
type Auth struct {
	Bearer             string
	Username, Password string
}

// IsZero reports whether no credential is configured.
func (a Auth) IsZero() bool { return a.Bearer == "" && a.Username == "" }

// Verify checks the request's Authorization header in constant time.
func (a Auth) Verify(h http.Header) error {
	if a.IsZero() {
		return fmt.Errorf("%w: no credential is configured for this webhook", ErrUnauthorized)
	}
	got := h.Get("Authorization")
	if got == "" {
		return fmt.Errorf("%w: Authorization header missing", ErrUnauthorized)
	}
	scheme, cred, _ := strings.Cut(got, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer") && a.Bearer != "":
		if !equal(strings.TrimSpace(cred), a.Bearer) {
			return fmt.Errorf("%w: bearer token does not match", ErrUnauthorized)
		}
		return nil
	case strings.EqualFold(scheme, "Basic") && a.Username != "":
		r := http.Request{Header: http.Header{"Authorization": {got}}}
		u, p, ok := r.BasicAuth()
		// Compare both so the timing does not tell which one failed.
		userOK, passOK := equal(u, a.Username), equal(p, a.Password)
		if !ok || !userOK || !passOK {
			return fmt.Errorf("%w: basic credentials do not match", ErrUnauthorized)
		}
		return nil
	}
	return fmt.Errorf("%w: Authorization scheme %q is not accepted here", ErrUnauthorized, scheme)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// SignatureHeader carries a SIEM alert's signature: "sha256=" and the hex
// HMAC-SHA256 of the body under the shared secret.
const SignatureHeader = "X-Rampart-Signature"

// Sign returns the signature header value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks header against the body's HMAC in constant time.
func VerifySignature(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no signing secret is configured for this webhook", ErrUnauthorized)
	}
	if header == "" {
		return fmt.Errorf("%w: %s header missing", ErrUnauthorized, SignatureHeader)
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return fmt.Errorf("%w: %s must be sha256=<hex>", ErrUnauthorized, SignatureHeader)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex", ErrUnauthorized, SignatureHeader)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%w: signature does not match the body", ErrUnauthorized)
	}
	return nil
}
