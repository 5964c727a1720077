package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors a caller branches on; a StatusError from the API matches the one
// its status code means.
var (
	// ErrNotFound: no rollout has that id (404).
	ErrNotFound = errors.New("no such rollout")
	// ErrFinished: the rollout has ended, so the action cannot apply (409).
	ErrFinished = errors.New("rollout has finished")
	// ErrUnauthorized: the API wants a valid bearer token (401).
	ErrUnauthorized = errors.New("a valid bearer token is required")
	// ErrForbidden: the token is the viewer's; actions need the
	// operator's (403).
	ErrForbidden = errors.New("the viewer token may only read: pause, resume, promote and abort need the operator token")
)

// StatusError is an answer other than 200.
type StatusError struct {
	Code    int    // HTTP status code
	Status  string // e.g. "409 Conflict"
	Message string // the API's Error, or the body
}

func (e *StatusError) Error() string { return e.Status + ": " + e.Message }

// Is matches the sentinel for e's status code.
func (e *StatusError) Is(target error) bool {
	switch e.Code {
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrFinished
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	}
	return false
}

// maxAnswer bounds an answer the client reads.
const maxAnswer = 16 << 20

// Client calls one deployer's operator API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the deployer at base (http or https URL).
// token, when not empty, is sent as a bearer token; hc nil means a client
// with a 30 s timeout.
func NewClient(base, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), token: token, http: hc}, nil
}

// List returns every rollout, newest first.
func (c *Client) List(ctx context.Context) ([]Rollout, error) {
	var list []Rollout
	err := c.do(ctx, http.MethodGet, PathRollouts, nil, &list)
	return list, err
}

// Rollout returns rollout id.
func (c *Client) Rollout(ctx context.Context, id string) (Rollout, error) {
	var r Rollout
	err := c.do(ctx, http.MethodGet, PathRollouts+"/"+url.PathEscape(id), nil, &r)
	return r, err
}

// Act asks for action on rollout id and returns the rollout after it;
// reason is recorded with a pause or an abort.
func (c *Client) Act(ctx context.Context, id string, action Action, reason string) (Rollout, error) {
	var r Rollout
	body, err := json.Marshal(ActionRequest{Reason: reason})
	if err != nil {
		return r, err
	}
	err = c.do(ctx, http.MethodPost, PathRollouts+"/"+url.PathEscape(id)+"/"+url.PathEscape(string(action)), body, &r)
	return r, err
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the deployer at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read the deployer's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &StatusError{Code: resp.StatusCode, Status: resp.Status, Message: string(bytes.TrimSpace(raw))}
		var apiErr Error
		if json.Unmarshal(raw, &apiErr) == nil && apiErr.Error != "" {
			e.Message = apiErr.Error
		}
		return e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode the deployer's answer: %w", err)
	}
	return nil
}
