package policy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// Defaults for what an application leaves out.
var (
	DefaultSteps     = []int{5, 25, 50, 100}
	DefaultPause     = 30 * time.Second
	DefaultInterval  = 5 * time.Second
	MinInterval      = time.Second
	DefaultErrorRate = ErrorRateRule{Max: 0.01, MinRequests: 20}
	DefaultMemory    = MemoryRule{MaxRatio: 1.9, Metric: "process_resident_memory_bytes"}
)

func applyDefaults(p *Policy, file string) {
	for i := range p.Apps {
		a := &p.Apps[i]
		stageDefaults(file, a)
		if a.Router.Type == "" {
			a.Router.Type = RouterLocal
		}
		if len(a.Canary.Steps) == 0 {
			a.Canary.Steps = slices.Clone(DefaultSteps)
		}
		if a.Canary.Pause == 0 {
			a.Canary.Pause = DefaultPause
		}
		an := &a.Analysis
		if an.Provider == "" {
			an.Provider = ProviderScrape
		}
		if an.Interval == 0 {
			an.Interval = DefaultInterval
		}
		if an.ErrorRate == (ErrorRateRule{}) {
			an.ErrorRate = DefaultErrorRate
		}
		if an.Latency.MaxMean > 0 && an.Latency.MinRequests == 0 {
			an.Latency.MinRequests = an.ErrorRate.MinRequests
		}
		if an.Memory.MaxRatio == 0 {
			an.Memory.MaxRatio = DefaultMemory.MaxRatio
		}
		if an.Memory.Metric == "" {
			an.Memory.Metric = DefaultMemory.Metric
		}
		if a.Notify.PagerDuty != nil && a.Notify.PagerDuty.Severity == "" {
			a.Notify.PagerDuty.Severity = "critical"
		}
		if a.Notify.Slack != nil && a.Notify.ScanBlocked == nil {
			a.Notify.ScanBlocked = []string{ChannelSlack}
		}
		if a.Notify.Slack != nil && a.Notify.Released == nil {
			a.Notify.Released = []string{ChannelSlack}
		}
		applyWorkloadDefaults(a.Workload)
	}
}

type violation struct{ path, msg string }

var appName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validate(p *Policy) []violation {
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	if p.Version != 1 {
		add("version", "version %d is not supported; want 1", p.Version)
	}
	if len(p.Apps) == 0 {
		add("apps", "at least one application is required")
	}
	names, images := map[string]int{}, map[string]int{}
	for i, a := range p.Apps {
		at := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.Name == "":
			add(at+".name", "is required")
		case !appName.MatchString(a.Name):
			add(at+".name", "%q must be lower-case letters, digits and dashes", a.Name)
		default:
			if j, dup := names[a.Name]; dup {
				add(at+".name", "%q is already used by apps[%d]", a.Name, j)
			}
			names[a.Name] = i
		}
		if a.Image == "" {
			add(at+".image", "is required (the image repository, e.g. registry.example.com/shop)")
		} else if j, dup := images[a.Image]; dup {
			add(at+".image", "%q is already used by apps[%d]", a.Image, j)
		} else {
			images[a.Image] = i
		}
		if a.Environment == "" {
			add(at+".environment", "is required")
		}
		v = append(v, validateRouter(at+".router", a.Router)...)
		v = append(v, validateCanary(at+".canary", a.Canary)...)
		if a.Canary.Pause > 0 && a.Analysis.Interval >= MinInterval && a.Canary.Pause < 2*a.Analysis.Interval {
			// The watcher judges a step from its start, once per interval;
			// a shorter step would end before it is judged.
			v = append(v, violation{at + ".canary.pause", fmt.Sprintf("%s is shorter than two analysis intervals (%s): a step would end before the watcher judges it", a.Canary.Pause, 2*a.Analysis.Interval)})
		}
		v = append(v, validateAnalysis(at+".analysis", a.Analysis, a.Router)...)
		v = append(v, validateNotify(at+".notify", a.Notify)...)
		v = append(v, validateWorkload(at+".workload", a.Workload)...)
		v = append(v, validateStages(at, a)...)
	}
	return v
}

func validateRouter(at string, r Router) []violation {
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	switch r.Type {
	case RouterLocal:
		if r.Local == nil {
			add(at+".local", "is required for router type local (listen, stable, canary)")
			break
		}
		if _, _, err := net.SplitHostPort(r.Local.Listen); err != nil {
			add(at+".local.listen", "%q is not host:port", r.Local.Listen)
		}
		for name, u := range map[string]string{"stable": r.Local.Stable, "canary": r.Local.Canary} {
			if !isHTTPURL(u) {
				add(at+".local."+name, "%q is not an http(s) URL", u)
			}
		}
	case RouterGatewayAPI:
		g := r.GatewayAPI
		if g == nil {
			add(at+".gatewayapi", "is required for router type gatewayapi")
			break
		}
		for name, val := range map[string]string{"namespace": g.Namespace, "route": g.Route, "stableBackend": g.StableBackend, "canaryBackend": g.CanaryBackend} {
			if val == "" {
				add(at+".gatewayapi."+name, "is required")
			}
		}
		if g.StableBackend != "" && g.StableBackend == g.CanaryBackend {
			add(at+".gatewayapi.canaryBackend", "must differ from stableBackend")
		}
	default:
		add(at+".type", "%q is not a router; want local or gatewayapi", r.Type)
	}
	return v
}

func validateCanary(at string, c Canary) []violation {
	var v []violation
	prev := 0
	for i, w := range c.Steps {
		path := fmt.Sprintf("%s.steps[%d]", at, i)
		switch {
		case w < 1 || w > 100:
			v = append(v, violation{path, fmt.Sprintf("weight %d must be within 1..100", w)})
		case w <= prev:
			v = append(v, violation{path, fmt.Sprintf("weight %d must be above the previous step's %d", w, prev)})
		}
		prev = w
	}
	if n := len(c.Steps); n > 0 && c.Steps[n-1] != 100 {
		v = append(v, violation{fmt.Sprintf("%s.steps[%d]", at, n-1), "the last step must be 100"})
	}
	if c.Pause < 0 {
		v = append(v, violation{at + ".pause", "must not be negative"})
	}
	return v
}

func validateAnalysis(at string, a Analysis, r Router) []violation {
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	switch a.Provider {
	case ProviderPrometheus:
		if a.Prometheus == nil || !isHTTPURL(a.Prometheus.URL) {
			add(at+".prometheus.url", "an http(s) URL of the Prometheus server is required for provider prometheus")
		}
	case ProviderScrape:
		if r.Type != RouterLocal {
			add(at+".provider", "scrape reads the local router's metrics; with router %s use provider prometheus", r.Type)
		}
	default:
		add(at+".provider", "%q is not a metrics provider; want scrape or prometheus", a.Provider)
	}
	if a.Interval < MinInterval {
		add(at+".interval", "%s is below the minimum of %s", a.Interval, MinInterval)
	}
	if a.ErrorRate.Max <= 0 || a.ErrorRate.Max >= 1 {
		add(at+".errorRate.max", "%v must be a ratio between 0 and 1 (0.01 is 1%%)", a.ErrorRate.Max)
	}
	if a.ErrorRate.MinRequests < 1 {
		add(at+".errorRate.minRequests", "must be at least 1, so that no data is never a pass")
	}
	if a.Latency.MaxMean < 0 || a.Latency.MinRequests < 0 {
		add(at+".latency", "maxMean %s and minRequests %d must not be negative", a.Latency.MaxMean, a.Latency.MinRequests)
	}
	if a.Memory.MaxRatio <= 1 {
		add(at+".memory.maxRatio", "%v must be above 1 (1.9 allows 90%% more than stable)", a.Memory.MaxRatio)
	}
	return v
}

func validateNotify(at string, n Notify) []violation {
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	checkSecret := func(path string, s Secret) {
		switch {
		case s.IsZero():
			add(path, "is required: {env: NAME} or {file: PATH}")
		case s.Env != "" && s.File != "":
			add(path, "give env or file, not both")
		}
	}
	if pd := n.PagerDuty; pd != nil {
		checkSecret(at+".pagerduty.routingKey", pd.RoutingKey)
		if !slices.Contains([]string{"critical", "error", "warning", "info"}, pd.Severity) {
			add(at+".pagerduty.severity", "%q is not critical, error, warning or info", pd.Severity)
		}
		if pd.URL != "" && !isHTTPURL(pd.URL) {
			add(at+".pagerduty.url", "%q is not an http(s) URL", pd.URL)
		}
	}
	if n.Slack != nil {
		checkSecret(at+".slack.webhook", n.Slack.Webhook)
	}
	for field, chans := range map[string][]string{"scanBlocked": n.ScanBlocked, "released": n.Released} {
		for i, c := range chans {
			path := fmt.Sprintf("%s.%s[%d]", at, field, i)
			switch {
			case c == ChannelSlack && n.Slack == nil, c == ChannelPagerDuty && n.PagerDuty == nil:
				add(path, "channel %q is not configured under notify", c)
			case c != ChannelSlack && c != ChannelPagerDuty:
				add(path, "%q is not a channel; want slack or pagerduty", c)
			}
		}
	}
	return v
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
