package slack_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rampartci/rampart/services/notifier/internal/notify"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack"
	"github.com/rampartci/rampart/services/notifier/internal/notify/slack/slacktest"
)

func TestPost(t *testing.T) {
	srv := slacktest.NewServer(t)
	n, err := slack.New(slack.Config{Webhook: srv.URL}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fields []notify.Field
	for i := range 14 {
		fields = append(fields, notify.Field{Label: "k<" + string(rune('a'+i)), Value: strings.Repeat("v", 2100)})
	}
	m := notify.NewMessage("Rollback: shop in prod",
		notify.Header(strings.Repeat("Rollback of shop ", 20)),
		notify.Fields(fields...),
		notify.Section(strings.Repeat("line\n", 1000)),
		notify.Divider(),
		notify.Context("rampart report rollback "+notify.Code("r-1")))
	if err := n.Post(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	if len(got) != 1 || len(got[0].Blocks) != 5 || len(got[0].Blocks[1].Fields) != notify.MaxFields {
		t.Fatalf("messages = %+v", got)
	}
	if !strings.HasPrefix(got[0].Blocks[1].Fields[0].Text, "*k&lt;a*\n") {
		t.Errorf("label not escaped: %q", got[0].Blocks[1].Fields[0].Text)
	}
}

func TestPostErrors(t *testing.T) {
	tests := []struct {
		status    int
		retryable bool
	}{
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := slacktest.NewServer(t)
			srv.Respond(tt.status)
			n, _ := slack.New(slack.Config{Webhook: srv.URL}, nil, nil)
			err := n.Post(t.Context(), notify.NewMessage("x", notify.Section("x")))
			var ne *notify.Error
			if !errors.As(err, &ne) || ne.Status != tt.status || ne.Retryable != tt.retryable {
				t.Fatalf("err = %v, want status %d retryable %v", err, tt.status, tt.retryable)
			}
			if strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error shows the webhook URL: %v", err)
			}
		})
	}
	t.Run("no answer hides the URL", func(t *testing.T) {
		n, _ := slack.New(slack.Config{Webhook: "http://127.0.0.1:1/services/SECRET"}, nil, nil)
		err := n.Post(t.Context(), notify.NewMessage("x", notify.Section("x")))
		if !notify.Retryable(err) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("err = %v", err)
		}
	})
	if _, err := slack.New(slack.Config{Webhook: "not a url SECRET"}, nil, nil); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("New with a bad URL: %v", err)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"text":"x","blocks":[{"type":"header","text":{"type":"plain_text","text":"h"}}]}`))
	f.Add([]byte(`{"blocks":[{"type":"section"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, problems := slacktest.Check(b)
		if (m == nil) == (len(problems) == 0) {
			t.Fatalf("Check returned %v and %v", m, problems)
		}
	})
}
