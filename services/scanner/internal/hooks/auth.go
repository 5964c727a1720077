package hooks

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// RegistryAuth is the credential a registry's notification endpoint is
// configured to send in its Authorization header: Distribution sends the
// headers listed in its endpoint config, Harbor sends a policy's auth_header
// verbatim. Exactly one form should be set; a zero RegistryAuth accepts
// nothing.
type RegistryAuth struct {
	Bearer             string // Authorization: Bearer <Bearer>
	Username, Password string // Authorization: Basic …
	Header             string // Authorization: <Header>, compared verbatim (Harbor auth_header)
}

// Verify checks the request's Authorization header in constant time.
func (a RegistryAuth) Verify(h http.Header) error {
	got := h.Get("Authorization")
	if got == "" {
		return fmt.Errorf("%w: Authorization header missing", ErrUnauthorized)
	}
	switch {
	case a.Bearer != "":
		tok, ok := cutPrefixFold(got, "Bearer ")
		if !ok || !equal(tok, a.Bearer) {
			return fmt.Errorf("%w: bearer token does not match", ErrUnauthorized)
		}
	case a.Username != "":
		r := http.Request{Header: http.Header{"Authorization": {got}}}
		u, p, ok := r.BasicAuth()
		// Evaluate both comparisons so timing does not reveal which failed.
		userOK, passOK := equal(u, a.Username), equal(p, a.Password)
		if !ok || !userOK || !passOK {
			return fmt.Errorf("%w: basic credentials do not match", ErrUnauthorized)
		}
	case a.Header != "":
		if !equal(got, a.Header) {
			return fmt.Errorf("%w: Authorization header does not match", ErrUnauthorized)
		}
	default:
		return fmt.Errorf("%w: no registry webhook credential configured", ErrUnauthorized)
	}
	return nil
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}
