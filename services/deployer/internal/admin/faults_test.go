package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampartci/rampart/services/deployer/adminapi"
	"github.com/rampartci/rampart/services/deployer/internal/admin"
)

// faults records what it was asked; app "shop" exists, "gw" has a router
// without faults.
type faults struct{ injected []adminapi.Fault }

func (f *faults) check(app string) error {
	switch app {
	case "shop":
		return nil
	case "gw":
		return admin.ErrNoFaults
	}
	return admin.ErrNoApp
}

func (f *faults) Fault(_ context.Context, app string) (adminapi.FaultState, error) {
	return adminapi.FaultState{App: app}, f.check(app)
}

func (f *faults) InjectFault(_ context.Context, app string, req adminapi.Fault) (adminapi.FaultState, error) {
	if err := f.check(app); err != nil {
		return adminapi.FaultState{}, err
	}
	if req.For == "forever" {
		return adminapi.FaultState{}, fmt.Errorf("%w: for", admin.ErrBadFault)
	}
	f.injected = append(f.injected, req)
	return adminapi.FaultState{App: app, Active: true, ErrorRatio: req.ErrorRatio}, nil
}

func (f *faults) ClearFault(_ context.Context, app string) (adminapi.FaultState, error) {
	return adminapi.FaultState{App: app}, f.check(app)
}

// Only the chaos token injects faults: the operator's and the viewer's are
// refused, as is any request when no chaos token is configured; bad faults
// are 400 and never reach the router.
func TestFaultRoutesNeedTheChaosToken(t *testing.T) {
	tokens := admin.Tokens{Viewer: "v-token", Operator: "o-token", Chaos: "c-token"}
	body := `{"errorRatio":0.2,"for":"1m"}`
	for _, tc := range []struct {
		name, method, app, token, ctype, body string
		tokens                                admin.Tokens
		want                                  int
	}{
		{"chaos injects", http.MethodPut, "shop", "c-token", "application/json", body, tokens, 200},
		{"chaos reads", http.MethodGet, "shop", "c-token", "", "", tokens, 200},
		{"chaos clears", http.MethodDelete, "shop", "c-token", "", "", tokens, 200},
		{"operator may not", http.MethodPut, "shop", "o-token", "application/json", body, tokens, 403},
		{"viewer may not", http.MethodGet, "shop", "v-token", "", "", tokens, 403},
		{"no token", http.MethodPut, "shop", "", "application/json", body, tokens, 401},
		{"none configured", http.MethodPut, "shop", "", "application/json", body, admin.Tokens{Operator: "o-token"}, 401},
		{"form post", http.MethodPut, "shop", "c-token", "text/plain", body, tokens, 415},
		{"unknown field", http.MethodPut, "shop", "c-token", "application/json", `{"ratio":1,"for":"1m"}`, tokens, 400},
		{"bad fault", http.MethodPut, "shop", "c-token", "application/json", `{"errorRatio":0.2,"for":"forever"}`, tokens, 400},
		{"no such app", http.MethodPut, "nope", "c-token", "application/json", body, tokens, 404},
		{"router without faults", http.MethodPut, "gw", "c-token", "application/json", body, tokens, 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faults{}
			mux := http.NewServeMux()
			admin.FaultRoutes(mux, f, tc.tokens)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			req, _ := http.NewRequest(tc.method, srv.URL+adminapi.PathFaults+"/"+tc.app, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s with %q: %d, want %d", tc.method, tc.app, tc.token, resp.StatusCode, tc.want)
			}
			if injected := len(f.injected) > 0; injected != (tc.want == 200 && tc.method == http.MethodPut) {
				t.Fatalf("fault injected %v on a %d answer", f.injected, resp.StatusCode)
			}
		})
	}
}
