package console

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// hub follows the deployer's rollouts bucket and passes every change of a
// rollout to the browsers watching: a step or a rollback reaches a page as
// soon as the deployer has stored it.
type hub struct {
	mu   sync.Mutex
	subs map[chan adminapi.Rollout]struct{}
}

func newHub() *hub { return &hub{subs: map[chan adminapi.Rollout]struct{}{}} }

// follow watches kv's rollouts until ctx ends; it returns once the watch is
// set up, with the loop running in done's goroutine.
func (h *hub) follow(ctx context.Context, kv jetstream.KeyValue, log func(msg string, args ...any)) (done <-chan struct{}, err error) {
	w, err := kv.Watch(ctx, "rollout.>", jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	d := make(chan struct{})
	go func() {
		defer close(d)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				var r adminapi.Rollout
				if err := json.Unmarshal(e.Value(), &r); err != nil {
					log("console: undecodable rollout in the bucket", "key", e.Key(), "err", err)
					continue
				}
				h.publish(r)
			}
		}
	}()
	return d, nil
}

// subscribe returns a channel of rollout changes and a func that ends the
// subscription. A subscriber that falls behind by more than the buffer is
// dropped (its channel closed): the browser reconnects and starts again from
// the current list.
func (h *hub) subscribe() (<-chan adminapi.Rollout, func()) {
	ch := make(chan adminapi.Rollout, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

func (h *hub) publish(r adminapi.Rollout) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- r:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}
