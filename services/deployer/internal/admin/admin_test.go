package admin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/services/deployer/adminapi"
	"github.com/rampartci/rampart/services/deployer/adminapi/adminapitest"
	"github.com/rampartci/rampart/services/deployer/internal/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func serve(t *testing.T, op admin.Operator, tokens admin.Tokens) string {
	t.Helper()
	mux := http.NewServeMux()
	admin.Routes(mux, op, tokens)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientAndServer(t *testing.T) {
	op := adminapitest.New(
		adminapi.Rollout{ID: "shop-1", App: "shop", Phase: adminapi.PhaseProgressing, Steps: []int{5, 100}, Weight: 5},
		adminapi.Rollout{ID: "shop-0", App: "shop", Phase: adminapi.PhaseRolledBack},
	)
	url := serve(t, op, admin.Tokens{Operator: "s3cret", Viewer: "look"})
	c, err := adminapi.NewClient(url+"/", "s3cret", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	list, err := c.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %v, %v", list, err)
	}
	r, err := c.Rollout(ctx, "shop-1")
	if err != nil || r.Weight != 5 || r.Phase != adminapi.PhaseProgressing {
		t.Fatalf("Rollout: %+v, %v", r, err)
	}
	r, err = c.Act(ctx, "shop-1", adminapi.ActionPause, "investigating")
	if err != nil || r.Phase != adminapi.PhasePaused || op.Acted()[0] != "pause:investigating" {
		t.Fatalf("pause: %+v, %v (acted %v)", r, err, op.Acted())
	}

	_, err = c.Rollout(ctx, "no-such")
	if !errors.Is(err, adminapi.ErrNotFound) || err.Error() != "404 Not Found: no such rollout" {
		t.Fatalf("missing rollout: %v", err)
	}
	_, err = c.Act(ctx, "shop-0", adminapi.ActionAbort, "")
	if !errors.Is(err, adminapi.ErrFinished) || err.Error() != "409 Conflict: rollout has finished (rolledback)" {
		t.Fatalf("finished rollout: %v", err)
	}
	_, err = c.Act(ctx, "shop-1", "reboot", "")
	var se *adminapi.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("unknown action: %v", err)
	}

	for _, token := range []string{"", "wrong", "s3cret2", "Bearer s3cret"} {
		bad, _ := adminapi.NewClient(url, token, nil)
		if _, err := bad.List(ctx); !errors.Is(err, adminapi.ErrUnauthorized) {
			t.Fatalf("token %q: %v", token, err)
		}
	}
	if _, err := adminapi.NewClient("ftp://x", "", nil); err == nil {
		t.Fatal("an ftp URL was accepted")
	}
}

// The action body is decoded strictly and bounded.
func TestActionBody(t *testing.T) {
	op := adminapitest.New(adminapi.Rollout{ID: "shop-1", Phase: adminapi.PhaseProgressing})
	url := serve(t, op, admin.Tokens{Operator: "op"})
	for _, tc := range []struct {
		body string
		code int
	}{
		{``, http.StatusOK},
		{`{"reason": "drill"}`, http.StatusOK},
		{`{"why": "drill"}`, http.StatusBadRequest},
		{`{"reason": `, http.StatusBadRequest},
		{`{"reason": "` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		resp := post(t, url+adminapi.PathRollouts+"/shop-1/resume", "op", "application/json", tc.body)
		if resp.StatusCode != tc.code {
			t.Errorf("body %.30q: status %d, want %d", tc.body, resp.StatusCode, tc.code)
		}
	}
	if len(op.Acted()) != 2 {
		t.Fatalf("acted %v, want the two valid requests", op.Acted())
	}
}

// post sends an action request with a bearer token (none when empty) and
// a content type (none when empty).
func post(t *testing.T, url, token, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The viewer token reads; acting needs the operator token (D6: anyone could
// promote a canary to 100%).
func TestRoles(t *testing.T) {
	op := adminapitest.New(adminapi.Rollout{ID: "shop-1", Phase: adminapi.PhaseProgressing})
	url := serve(t, op, admin.Tokens{Operator: "op", Viewer: "view"})
	ctx := t.Context()
	viewer, _ := adminapi.NewClient(url, "view", nil)
	if _, err := viewer.List(ctx); err != nil {
		t.Fatalf("viewer List: %v", err)
	}
	if _, err := viewer.Rollout(ctx, "shop-1"); err != nil {
		t.Fatalf("viewer Rollout: %v", err)
	}
	for _, action := range adminapi.Actions {
		_, err := viewer.Act(ctx, "shop-1", action, "")
		var se *adminapi.StatusError
		if !errors.Is(err, adminapi.ErrForbidden) || !errors.As(err, &se) || se.Code != http.StatusForbidden {
			t.Fatalf("viewer %s: %v, want 403", action, err)
		}
	}
	for _, token := range []string{"", "nope"} {
		if resp := post(t, url+adminapi.PathRollouts+"/shop-1/promote", token, "application/json", "{}"); resp.StatusCode != http.StatusUnauthorized ||
			resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("promote with token %q: %d", token, resp.StatusCode)
		}
	}
	if len(op.Acted()) != 0 {
		t.Fatalf("acted %v on refused requests", op.Acted())
	}
	operatorClient, _ := adminapi.NewClient(url, "op", nil)
	if _, err := operatorClient.Act(ctx, "shop-1", adminapi.ActionPromote, ""); err != nil || len(op.Acted()) != 1 {
		t.Fatalf("operator promote: %v (acted %v)", err, op.Acted())
	}
	// The action carries who asked: the operator role and a fingerprint
	// of its token, never the token.
	if want := adminapi.OperatorActor("op", "api"); len(op.Actors()) != 1 || op.Actors()[0] != want ||
		!strings.HasPrefix(want.Name, "operator sha256:") || strings.Contains(want.Name, "op ") {
		t.Fatalf("actors %+v, want [%+v]", op.Actors(), want)
	}
	if other := adminapi.OperatorActor("another token", "api"); other.Name == op.Actors()[0].Name {
		t.Fatalf("two tokens share the fingerprint %s", other.Name)
	}
}

// With no token configured, the API refuses every request.
func TestNoTokenRefusesAll(t *testing.T) {
	op := adminapitest.New(adminapi.Rollout{ID: "shop-1", Phase: adminapi.PhaseProgressing})
	url := serve(t, op, admin.Tokens{})
	for _, token := range []string{"", "anything"} {
		c, _ := adminapi.NewClient(url, token, nil)
		if _, err := c.List(t.Context()); !errors.Is(err, adminapi.ErrUnauthorized) {
			t.Fatalf("List with %q: %v", token, err)
		}
		if _, err := c.Act(t.Context(), "shop-1", adminapi.ActionPromote, ""); !errors.Is(err, adminapi.ErrUnauthorized) {
			t.Fatalf("promote with %q: %v", token, err)
		}
	}
	if len(op.Acted()) != 0 {
		t.Fatalf("acted %v", op.Acted())
	}
}

// An action must be JSON: a cross-origin text/plain or form POST (which a
// browser sends without a preflight) gets 415 and never reaches the
// handler, token or not.
func TestActionsNeedJSON(t *testing.T) {
	op := adminapitest.New(adminapi.Rollout{ID: "shop-1", Phase: adminapi.PhaseProgressing})
	url := serve(t, op, admin.Tokens{Operator: "op"})
	for _, tc := range []struct{ token, contentType string }{
		{"", "text/plain"},
		{"op", "text/plain;charset=UTF-8"},
		{"op", "application/x-www-form-urlencoded"},
		{"op", "multipart/form-data; boundary=x"},
		{"op", ""},
	} {
		if resp := post(t, url+adminapi.PathRollouts+"/shop-1/promote", tc.token, tc.contentType, `{"reason":"x"}`); resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("token %q, content type %q: %d, want 415", tc.token, tc.contentType, resp.StatusCode)
		}
	}
	if len(op.Acted()) != 0 {
		t.Fatalf("acted %v on requests that were not JSON", op.Acted())
	}
	if resp := post(t, url+adminapi.PathRollouts+"/shop-1/promote", "op", "application/json; charset=utf-8", `{}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("JSON with a charset: %d", resp.StatusCode)
	}
}
