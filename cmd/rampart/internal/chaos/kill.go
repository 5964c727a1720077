package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/service"
)

// Components reaches the kill route of the host that runs the mesh's
// components (service.PathComponents; `rampart up` opens it to the chaos
// token only).
type Components struct {
	// Base is the host's HTTP URL; Token the chaos token.
	Base, Token string
	HTTP        *http.Client
}

// Kill stops the component now and has the host start it again after
// downtime.
func (c *Components) Kill(ctx context.Context, name string, downtime time.Duration) (service.ComponentState, error) {
	body, err := json.Marshal(service.KillRequest{Downtime: downtime.String()})
	if err != nil {
		return service.ComponentState{}, err
	}
	var s service.ComponentState
	err = c.do(ctx, http.MethodPost, "/"+url.PathEscape(name)+"/kill", body, http.StatusAccepted, &s)
	return s, err
}

// State is the component's life in the host.
func (c *Components) State(ctx context.Context, name string) (service.ComponentState, error) {
	var s service.ComponentState
	err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(name), nil, http.StatusOK, &s)
	return s, err
}

func (c *Components) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	headers := map[string]string{"Authorization": "Bearer " + c.Token}
	if body != nil {
		headers["Content-Type"] = "application/json"
	}
	code, raw, err := send(ctx, c.HTTP, method, strings.TrimSuffix(c.Base, "/")+service.PathComponents+path, body, headers)
	if err != nil {
		return err
	}
	if code != want {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = string(raw)
		}
		return fmt.Errorf("%s %s%s: %d %s: %s", method, service.PathComponents, path, code, http.StatusText(code), e.Error)
	}
	return json.Unmarshal(raw, out)
}

// back waits until the killed component runs again, and returns when it
// started; an error when it failed to start or the deadline passed first.
func (c *Components) back(ctx context.Context, name string, deadline time.Time) (time.Time, error) {
	for {
		s, err := c.State(ctx, name)
		switch {
		case err == nil && s.Running:
			return s.StartedAt, nil
		case err == nil && s.Error != "":
			return time.Time{}, fmt.Errorf("the %s did not start again: %s", name, s.Error)
		case time.Now().After(deadline):
			if err == nil {
				err = fmt.Errorf("the %s was not running again by %s", name, deadline.UTC().Format(time.RFC3339))
			}
			return time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
