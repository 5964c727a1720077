package analysis_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/watcher/internal/analysis"
)

func TestErrorRate(t *testing.T) {
	rule := policy.ErrorRateRule{Max: 0.01, MinRequests: 20}
	tests := []struct {
		name             string
		requests, errors float64
		want             analysis.Result
		observed         float64
		mention          string
	}{
		{"no traffic is no data", 0, 0, analysis.NoData, 0, "fewer than the 20"},
		{"too few requests is no data, even all failing", 19, 19, analysis.NoData, 0, "19 requests"},
		{"exactly the minimum is judged", 20, 0, analysis.Pass, 0, "0.00%"},
		{"at the maximum passes", 1000, 10, analysis.Pass, 0.01, "1.00%"},
		{"above the maximum breaches", 1000, 11, analysis.Breach, 0.011, "1.10% (11 of 1000 requests) is above the maximum 1.00%"},
		{"all failing breaches", 25, 25, analysis.Breach, 1, "100.00%"},
		{"extrapolated counts keep decimals", 40.5, 4.25, analysis.Breach, 4.25 / 40.5, "4.25 of 40.50"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := analysis.ErrorRate(analysis.Reading{Requests: tc.requests, Errors: tc.errors}, rule)
			if v.Result != tc.want || v.Observed != tc.observed || v.Rule != analysis.RuleErrorRate || v.Threshold != 0.01 {
				t.Fatalf("got %+v, want %s observed %v", v, tc.want, tc.observed)
			}
			if !strings.Contains(v.Description, tc.mention) {
				t.Errorf("description %q does not mention %q", v.Description, tc.mention)
			}
		})
	}
}

func TestMemory(t *testing.T) {
	rule := policy.MemoryRule{MaxRatio: 1.9, Metric: "process_resident_memory_bytes"}
	const mib = 1 << 20
	tests := []struct {
		name    string
		r       analysis.Reading
		want    analysis.Result
		mention string
	}{
		{"missing gauge is no data", analysis.Reading{MemoryReason: "canary: metric not exposed"}, analysis.NoData, "metric not exposed"},
		{"zero stable is no data", analysis.Reading{HasMemory: true, CanaryMemory: 10}, analysis.NoData, "stable memory is zero"},
		{"equal passes", analysis.Reading{HasMemory: true, CanaryMemory: 100 * mib, StableMemory: 100 * mib}, analysis.Pass, "1.00×"},
		{"at the maximum passes", analysis.Reading{HasMemory: true, CanaryMemory: 190 * mib, StableMemory: 100 * mib}, analysis.Pass, "within"},
		{"above the maximum breaches", analysis.Reading{HasMemory: true, CanaryMemory: 200 * mib, StableMemory: 100 * mib}, analysis.Breach,
			"canary memory 200.0 MiB is 2.00× stable 100.0 MiB, above the maximum 1.90×"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := analysis.Memory(tc.r, rule)
			if v.Result != tc.want || v.Rule != analysis.RuleMemory || v.Threshold != 1.9 {
				t.Fatalf("got %+v, want %s", v, tc.want)
			}
			if !strings.Contains(v.Description, tc.mention) {
				t.Errorf("description %q does not mention %q", v.Description, tc.mention)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	rule := policy.LatencyRule{MaxMean: 250 * time.Millisecond, MinRequests: 20}
	tests := []struct {
		name       string
		sum, count float64
		want       analysis.Result
		mention    string
	}{
		{"no traffic is no data", 0, 0, analysis.NoData, "fewer than the 20"},
		{"too few requests is no data, even slow", 190, 19, analysis.NoData, "19 timed requests"},
		{"fast passes", 20 * 0.05, 20, analysis.Pass, "mean latency 50 ms over 20 requests is within the maximum 250ms"},
		{"at the maximum passes", 100 * 0.25, 100, analysis.Pass, "within"},
		{"slow breaches", 100 * 0.4, 100, analysis.Breach, "mean latency 400 ms over 100 requests is above the maximum 250ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := analysis.Latency(analysis.Reading{LatencySum: tc.sum, LatencyCount: tc.count}, rule)
			if v.Result != tc.want || v.Rule != analysis.RuleLatency || v.Threshold != 0.25 {
				t.Fatalf("got %+v, want %s", v, tc.want)
			}
			if !strings.Contains(v.Description, tc.mention) {
				t.Errorf("description %q does not mention %q", v.Description, tc.mention)
			}
		})
	}
}
