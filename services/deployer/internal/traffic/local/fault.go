package local

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// FaultHeader is set on a response the router made up for an injected
// fault, so a drill's traffic and a person reading it can tell.
const FaultHeader = "X-Rampart-Fault"

// Fault bounds: a drill's fault is short and never unbounded.
const (
	// MaxFaultDuration is the longest a fault may last.
	MaxFaultDuration = 15 * time.Minute
	// MaxFaultLatency is the most latency a fault may add to a request.
	MaxFaultLatency = 30 * time.Second
)

// ErrFaultInvalid wraps every fault the router refuses.
var ErrFaultInvalid = errors.New("invalid fault")

// Fault is what the router does to canary requests during a chaos drill:
// it answers ErrorRatio of them with 500 itself, without asking the
// canary, and delays every one of them by Latency first. Stable requests
// are never touched. The fault ends by itself at Until.
type Fault struct {
	ErrorRatio float64
	Latency    time.Duration
	Until      time.Time
}

// Check validates f against now: a ratio within 0..1, a latency within
// 0..MaxFaultLatency, at least one of them, and an end after now within
// MaxFaultDuration.
func (f Fault) Check(now time.Time) error {
	switch {
	case f.ErrorRatio < 0 || f.ErrorRatio > 1 || f.ErrorRatio != f.ErrorRatio:
		return fmt.Errorf("%w: error ratio %v is not within 0..1", ErrFaultInvalid, f.ErrorRatio)
	case f.Latency < 0 || f.Latency > MaxFaultLatency:
		return fmt.Errorf("%w: latency %s is not within 0..%s", ErrFaultInvalid, f.Latency, MaxFaultLatency)
	case f.ErrorRatio == 0 && f.Latency == 0:
		return fmt.Errorf("%w: neither an error ratio nor a latency", ErrFaultInvalid)
	case !f.Until.After(now):
		return fmt.Errorf("%w: it ends at %s, not after now", ErrFaultInvalid, f.Until.Format(time.RFC3339))
	case f.Until.Sub(now) > MaxFaultDuration:
		return fmt.Errorf("%w: it lasts %s, more than %s", ErrFaultInvalid, f.Until.Sub(now).Round(time.Second), MaxFaultDuration)
	}
	return nil
}

// activeFault is an injected fault with its own request counter: the
// errors are spread exactly as the canary weight spreads requests (see
// choose), per thousand.
type activeFault struct {
	Fault
	perMille uint64
	seq      atomic.Uint64
}

// InjectFault starts f on the canary's requests, replacing any fault in
// force. It takes effect on the very next request.
func (r *Router) InjectFault(f Fault) error {
	if err := f.Check(time.Now()); err != nil {
		return fmt.Errorf("local router for %s: %w", r.app, err)
	}
	r.fault.Store(&activeFault{Fault: f, perMille: uint64(f.ErrorRatio*1000 + 0.5)})
	r.log.Warn("fault injected on the canary", "errorRatio", f.ErrorRatio, "latency", f.Latency, "until", f.Until)
	return nil
}

// ClearFault ends the fault in force, if any.
func (r *Router) ClearFault() {
	if r.fault.Swap(nil) != nil {
		r.log.Info("fault cleared")
	}
}

// Fault is the fault in force; ok is false when there is none (or it has
// ended).
func (r *Router) Fault() (_ Fault, ok bool) {
	f := r.active(time.Now())
	if f == nil {
		return Fault{}, false
	}
	return f.Fault, true
}

// active is the fault in force at now, clearing one that has ended.
func (r *Router) active(now time.Time) *activeFault {
	f := r.fault.Load()
	if f == nil {
		return nil
	}
	if !now.Before(f.Until) {
		r.fault.CompareAndSwap(f, nil)
		return nil
	}
	return f
}

// faulty wraps the canary's proxy: while a fault is in force, each request
// waits its latency (or until the client goes), then is answered 500 by
// the router when the fault's ratio picks it, or proxied.
func (r *Router) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f := r.active(time.Now())
		if f == nil {
			next.ServeHTTP(w, req)
			return
		}
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				w.WriteHeader(StatusClientClosedRequest)
				return
			}
		}
		if f.perMille > 0 {
			n := f.next()
			if (n+1)*f.perMille/1000 > n*f.perMille/1000 {
				w.Header().Set(FaultHeader, "error")
				http.Error(w, "fault injected by a chaos drill", http.StatusInternalServerError)
				return
			}
		}
		if f.Latency > 0 {
			w.Header().Set(FaultHeader, "latency")
		}
		next.ServeHTTP(w, req)
	})
}

// next numbers the request within the fault's window of 1000.
func (f *activeFault) next() uint64 {
	for {
		n := f.seq.Load()
		if f.seq.CompareAndSwap(n, (n+1)%1000) {
			return n
		}
	}
}
