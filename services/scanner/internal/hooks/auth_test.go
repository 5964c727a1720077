package hooks_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/rampartci/rampart/services/scanner/internal/hooks"
)

func TestRegistryAuth(t *testing.T) {
	basic := func(u, p string) string {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	tests := []struct {
		name   string
		auth   hooks.RegistryAuth
		header string
		ok     bool
	}{
		{"bearer", hooks.RegistryAuth{Bearer: "tok"}, "Bearer tok", true},
		{"bearer scheme any case", hooks.RegistryAuth{Bearer: "tok"}, "bearer tok", true},
		{"bearer wrong", hooks.RegistryAuth{Bearer: "tok"}, "Bearer tik", false},
		{"bearer as basic", hooks.RegistryAuth{Bearer: "tok"}, basic("tok", ""), false},
		{"basic", hooks.RegistryAuth{Username: "harbor", Password: "pw"}, basic("harbor", "pw"), true},
		{"basic wrong password", hooks.RegistryAuth{Username: "harbor", Password: "pw"}, basic("harbor", "px"), false},
		{"harbor auth_header verbatim", hooks.RegistryAuth{Header: "s3cret-value"}, "s3cret-value", true},
		{"harbor auth_header wrong", hooks.RegistryAuth{Header: "s3cret-value"}, "s3cret-valu", false},
		{"missing header", hooks.RegistryAuth{Bearer: "tok"}, "", false},
		{"nothing configured", hooks.RegistryAuth{}, "Bearer anything", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			err := tt.auth.Verify(h)
			if tt.ok && err != nil {
				t.Errorf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, hooks.ErrUnauthorized) {
				t.Errorf("Verify = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestReadBody(t *testing.T) {
	b, err := hooks.ReadBody(bytes.NewReader(make([]byte, 10)), 10)
	if err != nil || len(b) != 10 {
		t.Errorf("at the limit: %d bytes, %v", len(b), err)
	}
	if _, err := hooks.ReadBody(bytes.NewReader(make([]byte, 11)), 10); !errors.Is(err, hooks.ErrTooLarge) {
		t.Errorf("over the limit: err = %v, want ErrTooLarge", err)
	}
}
