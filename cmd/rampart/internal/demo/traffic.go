package demo

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// traffic sends a steady stream of requests to url, as users would, and
// counts the answers.
type traffic struct {
	ok, failed atomic.Int64
}

func (t *traffic) run(ctx context.Context, url string, rps int) {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		go func() {
			resp, err := client.Get(url)
			if err != nil {
				t.failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.failed.Add(1)
				return
			}
			t.ok.Add(1)
		}()
	}
}
