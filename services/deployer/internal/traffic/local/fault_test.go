package local_test

import (
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/traffic/local"
)

// An injected error ratio answers exactly that share of the canary's
// requests with 500, counted against the canary in the router's metrics;
// the stable version is never touched; clearing the fault ends it.
func TestFaultErrorRatioOnCanaryOnly(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{InitialWeight: 50})
	if err := r.InjectFault(local.Fault{ErrorRatio: 0.2, Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{}
	fails := map[string]int{}
	for range 200 {
		resp := get(t, c, "http://"+r.Addr()+"/")
		if resp.status == http.StatusInternalServerError {
			fails[resp.version]++
		}
	}
	if fails["canary"] != 20 || fails["stable"] != 0 {
		t.Fatalf("500s by version %v, want 20 of the canary's 100 and none of stable's", fails)
	}
	if canary.hits.Load() != 80 {
		t.Fatalf("canary upstream saw %d requests, want the 80 the fault let through", canary.hits.Load())
	}
	fams := scrape(t, "http://"+r.Addr()+policy.RouterMetricsPath)
	if v, _ := sample(fams, policy.RouterRequests, map[string]string{"app": "shop", "version": "canary", "code": "500"}); v != 20 {
		t.Fatalf("router counts %v canary 500s, want 20", v)
	}
	r.ClearFault()
	if _, ok := r.Fault(); ok {
		t.Fatal("fault still in force after ClearFault")
	}
	for range 100 {
		if resp := get(t, c, "http://"+r.Addr()+"/"); resp.status != http.StatusOK {
			t.Fatalf("%s answered %d after the fault was cleared", resp.version, resp.status)
		}
	}
}

// Injected latency delays canary requests, not stable ones, and the fault
// ends by itself at its end time.
func TestFaultLatencyEndsByItself(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{InitialWeight: 50})
	const delay = 150 * time.Millisecond
	if err := r.InjectFault(local.Fault{Latency: delay, Until: time.Now().Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{}
	took := map[string]time.Duration{}
	for range 4 {
		start := time.Now()
		resp := get(t, c, "http://"+r.Addr()+"/")
		took[resp.version] = max(took[resp.version], time.Since(start))
	}
	if took["canary"] < delay || took["stable"] >= delay {
		t.Fatalf("slowest request by version %v, want canary ≥ %s and stable below", took, delay)
	}
	checkFor(t, 5*time.Second, func() error {
		if _, ok := r.Fault(); ok {
			return errors.New("fault still in force")
		}
		return nil
	})
}

func TestFaultBounds(t *testing.T) {
	stable, canary := newUpstream(t, "v1", 200), newUpstream(t, "v2", 200)
	r := startRouter(t, stable.srv.URL, canary.srv.URL, local.Options{})
	now := time.Now()
	for name, f := range map[string]local.Fault{
		"nothing":       {Until: now.Add(time.Minute)},
		"ratio above 1": {ErrorRatio: 1.5, Until: now.Add(time.Minute)},
		"ratio NaN":     {ErrorRatio: math.NaN(), Until: now.Add(time.Minute)},
		"negative":      {Latency: -time.Second, Until: now.Add(time.Minute)},
		"long latency":  {Latency: time.Hour, Until: now.Add(time.Minute)},
		"ended":         {ErrorRatio: 0.1, Until: now.Add(-time.Second)},
		"unbounded":     {ErrorRatio: 0.1, Until: now.Add(24 * time.Hour)},
	} {
		if err := r.InjectFault(f); !errors.Is(err, local.ErrFaultInvalid) {
			t.Errorf("%s: InjectFault = %v, want ErrFaultInvalid", name, err)
		}
	}
	if _, ok := r.Fault(); ok {
		t.Fatal("a refused fault is in force")
	}
}
