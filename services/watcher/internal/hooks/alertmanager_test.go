package hooks_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
)

func TestParseAlertmanager(t *testing.T) {
	body, err := os.ReadFile("testdata/alertmanager_v4.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := hooks.ParseAlertmanager(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Alerts) != 2 || m.Alerts[0].Fingerprint != "1a30ba71cca2921f" || m.Alerts[0].Labels["app"] != "shop" ||
		m.Alerts[0].StartsAt.UnixMilli() != 1777636800123 || m.Alerts[1].Status != hooks.StatusResolved {
		t.Fatalf("%+v", m)
	}
}

func TestParseAlertmanagerRejects(t *testing.T) {
	alert := func(fields string) string {
		return `{"version":"4","status":"firing","alerts":[{` + fields + `}]}`
	}
	ok := `"status":"firing","labels":{"app":"shop"},"startsAt":"2026-05-01T12:00:00Z","fingerprint":"abc"`
	tests := []struct{ name, body, reason string }{
		{"empty", ``, "empty body"},
		{"not an object", `[1]`, "not a JSON object"},
		{"not JSON", `{"version":`, "truncated JSON"},
		{"trailing data", alert(ok) + `{}`, "data after"},
		{"trailing brace", alert(ok) + `}`, "data after"},
		{"wrong version", `{"version":"3","alerts":[]}`, `version "3"`},
		{"no alerts", `{"version":"4"}`, "alerts is missing"},
		{"bad status", alert(strings.Replace(ok, `"firing"`, `"pending"`, 1)), `alerts[0].status "pending"`},
		{"no labels", alert(`"status":"firing","startsAt":"2026-05-01T12:00:00Z","fingerprint":"abc"`), "alerts[0].labels is missing"},
		{"no start", alert(`"status":"firing","labels":{"app":"shop"},"fingerprint":"abc"`), "startsAt is missing"},
		{"bad start", alert(`"status":"firing","labels":{"app":"shop"},"startsAt":"yesterday"`), "startsAt"},
		{"bad fingerprint", alert(strings.Replace(ok, `"abc"`, `"a b/c"`, 1)), "fingerprint"},
		{"label not a string", alert(`"status":"firing","labels":{"app":1},"startsAt":"2026-05-01T12:00:00Z"`), "labels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hooks.ParseAlertmanager([]byte(tc.body))
			if !errors.Is(err, webhook.ErrMalformed) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrMalformed mentioning %q", err, tc.reason)
			}
		})
	}
}

func TestMissingFingerprintIsDerivedFromLabels(t *testing.T) {
	body := `{"version":"4","alerts":[{"status":"firing","labels":{"b":"2","a":"1"},"startsAt":"2026-05-01T12:00:00Z"}]}`
	m, err := hooks.ParseAlertmanager([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if fp := m.Alerts[0].Fingerprint; len(fp) != 16 || fp != hooks.LabelsFingerprint(map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("fingerprint %q", fp)
	}
}
