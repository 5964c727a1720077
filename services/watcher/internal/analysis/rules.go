package analysis

import (
	"fmt"

	"github.com/rampartci/rampart/pkg/policy"
)

// Rule names, as anomalies carry them.
const (
	RuleErrorRate    = "http-5xx-ratio"
	RuleMemory       = "memory-ratio"
	RuleSIEM         = "siem"
	RuleAlertmanager = "alertmanager"
	RuleLatency      = "latency-mean"
)

// Result is a rule's outcome for one reading.
type Result string

// Results. NoData is never a pass: it is logged and counted as its own result.
const (
	Pass   Result = "pass"
	Breach Result = "breach"
	NoData Result = "nodata"
)

// Verdict is one rule's judgement of one reading.
type Verdict struct {
	Rule      string
	Result    Result
	Observed  float64
	Threshold float64
	// Description says what was seen, with the numbers.
	Description string
}

// ErrorRate judges the canary's 5xx ratio: a breach when it is above
// rule.Max, no data until the canary served rule.MinRequests requests.
func ErrorRate(r Reading, rule policy.ErrorRateRule) Verdict {
	v := Verdict{Rule: RuleErrorRate, Threshold: rule.Max}
	if r.Requests < float64(rule.MinRequests) || r.Requests <= 0 {
		v.Result = NoData
		v.Description = fmt.Sprintf("canary served %s requests in the window, fewer than the %d needed to judge its 5xx ratio",
			num(r.Requests), rule.MinRequests)
		return v
	}
	v.Observed = r.Errors / r.Requests
	if v.Observed > rule.Max {
		v.Result = Breach
		v.Description = fmt.Sprintf("canary 5xx ratio %s (%s of %s requests) is above the maximum %s",
			pct(v.Observed), num(r.Errors), num(r.Requests), pct(rule.Max))
		return v
	}
	v.Result = Pass
	v.Description = fmt.Sprintf("canary 5xx ratio %s (%s of %s requests) is within the maximum %s",
		pct(v.Observed), num(r.Errors), num(r.Requests), pct(rule.Max))
	return v
}

// Memory judges canary memory against stable memory: a breach when the
// ratio is above rule.MaxRatio, no data when either gauge is missing.
func Memory(r Reading, rule policy.MemoryRule) Verdict {
	v := Verdict{Rule: RuleMemory, Threshold: rule.MaxRatio}
	if !r.HasMemory || r.StableMemory <= 0 {
		v.Result = NoData
		reason := r.MemoryReason
		if reason == "" {
			reason = "stable memory is zero"
		}
		v.Description = fmt.Sprintf("memory gauge %s: %s", rule.Metric, reason)
		return v
	}
	v.Observed = r.CanaryMemory / r.StableMemory
	what := fmt.Sprintf("canary memory %s is %.2f× stable %s", bytes(r.CanaryMemory), v.Observed, bytes(r.StableMemory))
	if v.Observed > rule.MaxRatio {
		v.Result = Breach
		v.Description = fmt.Sprintf("%s, above the maximum %.2f×", what, rule.MaxRatio)
		return v
	}
	v.Result = Pass
	v.Description = fmt.Sprintf("%s, within the maximum %.2f×", what, rule.MaxRatio)
	return v
}

// Latency judges the canary's mean response time in seconds: a breach when
// it is above rule.MaxMean, no data until the canary served
// rule.MinRequests requests. Callers skip it when rule.MaxMean is zero.
func Latency(r Reading, rule policy.LatencyRule) Verdict {
	v := Verdict{Rule: RuleLatency, Threshold: rule.MaxMean.Seconds()}
	if r.LatencyCount < float64(max(rule.MinRequests, 1)) {
		v.Result = NoData
		v.Description = fmt.Sprintf("canary served %s timed requests in the window, fewer than the %d needed to judge its latency",
			num(r.LatencyCount), rule.MinRequests)
		return v
	}
	v.Observed = r.LatencySum / r.LatencyCount
	what := fmt.Sprintf("canary mean latency %s over %s requests", seconds(v.Observed), num(r.LatencyCount))
	if v.Observed > v.Threshold {
		v.Result = Breach
		v.Description = fmt.Sprintf("%s is above the maximum %s", what, rule.MaxMean)
		return v
	}
	v.Result = Pass
	v.Description = fmt.Sprintf("%s is within the maximum %s", what, rule.MaxMean)
	return v
}

func seconds(s float64) string { return fmt.Sprintf("%.0f ms", s*1000) }

// num prints a count: whole numbers without decimals (scrape), others with
// two (Prometheus extrapolates increase()).
func num(f float64) string {
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%.2f", f)
}

func pct(f float64) string { return fmt.Sprintf("%.2f%%", f*100) }

func bytes(f float64) string { return fmt.Sprintf("%.1f MiB", f/(1<<20)) }
