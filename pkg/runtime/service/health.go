package service

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type namedCheck struct {
	name  string
	check func(ctx context.Context) error
}

// readyHandler answers 200 when every check passes and 503 listing the
// failing ones otherwise.
func readyHandler(checks []namedCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var failed []string
		for _, c := range checks {
			if err := c.check(ctx); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(failed, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
}
