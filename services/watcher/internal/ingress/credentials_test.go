package ingress_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
)

// The credentials the ingress accepts, as their senders send them:
// Alertmanager's http_config (bearer token or basic auth) on
// /hooks/alertmanager, and the SIEM's HMAC-SHA256 signature on /hooks/siem.

func TestAuth(t *testing.T) {
	basic := func(u, p string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	both := webhook.Auth{Bearer: "tok", Username: "am", Password: "pw"}
	tests := []struct {
		name   string
		auth   webhook.Auth
		header string
		ok     bool
	}{
		{"bearer", both, "Bearer tok", true},
		{"bearer scheme in any case", both, "bearer tok", true},
		{"wrong bearer", both, "Bearer tok2", false},
		{"basic", both, basic("am", "pw"), true},
		{"wrong password", both, basic("am", "pw2"), false},
		{"wrong user", both, basic("root", "pw"), false},
		{"missing", both, "", false},
		{"other scheme", both, "Token tok", false},
		{"bearer not configured", webhook.Auth{Username: "am", Password: "pw"}, "Bearer tok", false},
		{"basic not configured", webhook.Auth{Bearer: "tok"}, basic("am", "pw"), false},
		{"nothing configured accepts nothing", webhook.Auth{}, "Bearer ", false},
		{"empty bearer", webhook.Auth{Bearer: "tok"}, "Bearer ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			err := tc.auth.Verify(h)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, webhook.ErrUnauthorized)) {
				t.Fatalf("Verify(%q) = %v, want ok=%v", tc.header, err, tc.ok)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"id":"siem-42","app":"shop"}`)
	sig := webhook.Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Fatalf("signature %q", sig)
	}
	if err := webhook.VerifySignature(secret, body, sig, hooks.SignatureHeader); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		secret, body []byte
		header       string
	}{
		"other body":    {secret, append(body, ' '), sig},
		"other secret":  {[]byte("other"), body, sig},
		"no header":     {secret, body, ""},
		"no prefix":     {secret, body, strings.TrimPrefix(sig, "sha256=")},
		"not hex":       {secret, body, "sha256=zz"},
		"sha1":          {secret, body, "sha1=" + strings.TrimPrefix(sig, "sha256=")},
		"no secret set": {nil, body, sig},
	} {
		t.Run(name, func(t *testing.T) {
			if err := webhook.VerifySignature(tc.secret, tc.body, tc.header, hooks.SignatureHeader); !errors.Is(err, webhook.ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
		})
	}
}
