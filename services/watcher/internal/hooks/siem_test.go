package hooks_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/watcher/internal/hooks"
)

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
			if !errors.Is(err, webhook.ErrMalformed) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrMalformed mentioning %q", err, tc.reason)
			}
		})
	}
}
