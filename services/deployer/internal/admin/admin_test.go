package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/services/deployer/adminapi"
	"github.com/rampartci/rampart/services/deployer/internal/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// operator keeps rollouts in a map and records the actions asked of it.
type operator struct {
	rollouts map[string]adminapi.Rollout
	acted    []string
}

func (o *operator) List(context.Context) ([]adminapi.Rollout, error) {
	var out []adminapi.Rollout
	for _, r := range o.rollouts {
		out = append(out, r)
	}
	return out, nil
}

func (o *operator) Rollout(_ context.Context, id string) (adminapi.Rollout, error) {
	r, ok := o.rollouts[id]
	if !ok {
		return r, fmt.Errorf("rollout %s: %w", id, adminapi.ErrNotFound)
	}
	return r, nil
}

func (o *operator) Act(ctx context.Context, id string, action adminapi.Action, reason string) (adminapi.Rollout, error) {
	r, err := o.Rollout(ctx, id)
	if err != nil {
		return r, err
	}
	if r.Phase.Terminal() {
		return r, fmt.Errorf("%w (%s)", adminapi.ErrFinished, r.Phase)
	}
	o.acted = append(o.acted, string(action)+":"+reason)
	if action == adminapi.ActionPause {
		r.Phase, r.Reason = adminapi.PhasePaused, "paused by operator: "+reason
	}
	o.rollouts[id] = r
	return r, nil
}

func serve(t *testing.T, op admin.Operator, token string) string {
	t.Helper()
	mux := http.NewServeMux()
	admin.Routes(mux, op, token)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientAndServer(t *testing.T) {
	op := &operator{rollouts: map[string]adminapi.Rollout{
		"shop-1": {ID: "shop-1", App: "shop", Phase: adminapi.PhaseProgressing, Steps: []int{5, 100}, Weight: 5},
		"shop-0": {ID: "shop-0", App: "shop", Phase: adminapi.PhaseRolledBack},
	}}
	url := serve(t, op, "s3cret")
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
	if err != nil || r.Phase != adminapi.PhasePaused || op.acted[0] != "pause:investigating" {
		t.Fatalf("pause: %+v, %v (acted %v)", r, err, op.acted)
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

	for _, token := range []string{"", "wrong"} {
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
	op := &operator{rollouts: map[string]adminapi.Rollout{"shop-1": {ID: "shop-1", Phase: adminapi.PhaseProgressing}}}
	url := serve(t, op, "")
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
		resp, err := http.Post(url+adminapi.PathRollouts+"/shop-1/resume", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("body %.30q: status %d, want %d", tc.body, resp.StatusCode, tc.code)
		}
	}
	if len(op.acted) != 2 {
		t.Fatalf("acted %v, want the two valid requests", op.acted)
	}
}
