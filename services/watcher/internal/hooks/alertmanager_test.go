package hooks_test

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

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
		{"not JSON", `{"version":`, "unexpected EOF"},
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
			if !errors.Is(err, hooks.ErrMalformed) || !strings.Contains(err.Error(), tc.reason) {
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

const siemOK = `{"id":"siem-42","app":"shop","severity":"high","title":"Outbound connection to a known C2 host","occurredAt":"2026-05-01T12:00:00Z"}`

func TestParseSIEM(t *testing.T) {
	a, err := hooks.ParseSIEM([]byte(siemOK))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "siem-42" || a.App != "shop" || a.Severity != "high" || a.OccurredAt.IsZero() {
		t.Fatalf("%+v", a)
	}
	full := `{"id":"x:1","app":"shop","severity":"critical","title":"t","occurredAt":"2026-05-01T12:00:00Z",` +
		`"description":"d","environment":"prod","source":"wazuh","url":"https://siem/x","digest":"sha256:` + strings.Repeat("a", 64) + `","labels":{"k":"v"}}`
	if _, err := hooks.ParseSIEM([]byte(full)); err != nil {
		t.Fatal(err)
	}
}

func TestParseSIEMRejects(t *testing.T) {
	with := func(old, new string) string { return strings.Replace(siemOK, old, new, 1) }
	tests := []struct{ name, body, reason string }{
		{"unknown field", with(`"id"`, `"extra":1,"id"`), `unknown field "extra"`},
		{"no id", with(`"id":"siem-42",`, ``), "id is required"},
		{"bad id", with(`"siem-42"`, `"has space"`), "id must be"},
		{"no app", with(`"app":"shop",`, ``), "app is required"},
		{"bad app", with(`"shop"`, `"Shop!"`), "lower-case"},
		{"no severity", with(`"severity":"high",`, ``), "severity is required"},
		{"bad severity", with(`"high"`, `"urgent"`), `severity "urgent"`},
		{"no title", with(`"Outbound connection to a known C2 host"`, `"  "`), "title is required"},
		{"no time", with(`,"occurredAt":"2026-05-01T12:00:00Z"`, ``), "occurredAt is required"},
		{"bad time", with(`"2026-05-01T12:00:00Z"`, `"noon"`), "occurredAt"},
		{"bad digest", with(`"id"`, `"digest":"sha256:xyz","id"`), "digest"},
		{"two objects", siemOK + siemOK, "data after"},
		{"wrong type", with(`"high"`, `3`), "severity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hooks.ParseSIEM([]byte(tc.body))
			if !errors.Is(err, hooks.ErrMalformed) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrMalformed mentioning %q", err, tc.reason)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	basic := func(u, p string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	both := hooks.Auth{Bearer: "tok", Username: "am", Password: "pw"}
	tests := []struct {
		name   string
		auth   hooks.Auth
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
		{"bearer not configured", hooks.Auth{Username: "am", Password: "pw"}, "Bearer tok", false},
		{"basic not configured", hooks.Auth{Bearer: "tok"}, basic("am", "pw"), false},
		{"nothing configured accepts nothing", hooks.Auth{}, "Bearer ", false},
		{"empty bearer", hooks.Auth{Bearer: "tok"}, "Bearer ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			err := tc.auth.Verify(h)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, hooks.ErrUnauthorized)) {
				t.Fatalf("Verify(%q) = %v, want ok=%v", tc.header, err, tc.ok)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(siemOK)
	sig := hooks.Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Fatalf("signature %q", sig)
	}
	if err := hooks.VerifySignature(secret, body, sig); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		secret, body []byte
		header       string
	}{
		"other body":    {secret, []byte(siemOK + " "), sig},
		"other secret":  {[]byte("other"), body, sig},
		"no header":     {secret, body, ""},
		"no prefix":     {secret, body, strings.TrimPrefix(sig, "sha256=")},
		"not hex":       {secret, body, "sha256=zz"},
		"sha1":          {secret, body, "sha1=" + strings.TrimPrefix(sig, "sha256=")},
		"no secret set": {nil, body, sig},
	} {
		t.Run(name, func(t *testing.T) {
			if err := hooks.VerifySignature(tc.secret, tc.body, tc.header); !errors.Is(err, hooks.ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestReadBody(t *testing.T) {
	if _, err := hooks.ReadBody(strings.NewReader(strings.Repeat("x", 11)), 10); !errors.Is(err, hooks.ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if b, err := hooks.ReadBody(strings.NewReader("0123456789"), 10); err != nil || len(b) != 10 {
		t.Fatalf("%q %v", b, err)
	}
}
