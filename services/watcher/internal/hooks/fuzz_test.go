package hooks_test

import (
	"errors"
	"os"
	"regexp"
	"testing"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
)

// The fuzz targets check that no input panics, that every failure wraps
// webhook.ErrMalformed (so the HTTP layer answers 400), and that every success
// carries the fields the watcher relies on, valid.

var fingerprintOK = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)

func FuzzParseAlertmanager(f *testing.F) {
	body, err := os.ReadFile("testdata/alertmanager_v4.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add([]byte(`{"version":"4","alerts":[]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"app":"x"},"startsAt":"2026-05-01T12:00:00Z"}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := hooks.ParseAlertmanager(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if m.Version != "4" || m.Alerts == nil {
			t.Fatalf("accepted %+v", m)
		}
		for _, a := range m.Alerts {
			if (a.Status != hooks.StatusFiring && a.Status != hooks.StatusResolved) || len(a.Labels) == 0 ||
				a.StartsAt.IsZero() || !fingerprintOK.MatchString(a.Fingerprint) {
				t.Fatalf("invalid alert accepted: %+v", a)
			}
		}
	})
}

var (
	siemIDOK  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	siemAppOK = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

func FuzzParseSIEM(f *testing.F) {
	f.Add([]byte(siemOK))
	f.Add([]byte(`{"id":"a","app":"b","severity":"low","title":"t","occurredAt":"2026-05-01T12:00:00Z","digest":"sha256:` +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"}`))
	f.Add([]byte(`{"id":"a","unknown":true}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := hooks.ParseSIEM(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if !siemIDOK.MatchString(a.ID) || !siemAppOK.MatchString(a.App) || a.Title == "" || a.OccurredAt.IsZero() || a.Severity == "" {
			t.Fatalf("invalid alert accepted: %+v", a)
		}
	})
}
