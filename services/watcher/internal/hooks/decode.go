// Package hooks decodes the alerts the watcher receives: Alertmanager's
// webhook (version 4) and Rampart's SIEM alert. The functions are pure,
// bytes in, typed alerts or an error out; every error wraps
// webhook.ErrMalformed, which the HTTP layer answers with 400.
// Authentication and body limits are pkg/runtime/webhook's.
package hooks

import (
	"bytes"
	"fmt"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// decode decodes exactly one JSON object from body into v; strict also
// rejects fields v does not have.
func decode(body []byte, v any, strict bool) error {
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] != '{' {
		return fmt.Errorf("%w: body is not a JSON object", webhook.ErrMalformed)
	}
	return webhook.Decode(body, v, strict)
}

// parseTime reads an RFC 3339 time; a missing one is an error.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: %s is missing", webhook.ErrMalformed, field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q is not an RFC 3339 time", webhook.ErrMalformed, field, s)
	}
	return t, nil
}
