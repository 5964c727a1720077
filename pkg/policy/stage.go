package policy

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// StageProduction names the last stage: the application's own router and
// canary. Listing it under stages is optional; it is always last.
const StageProduction = "production"

// DefaultStageTimeout bounds a stage's checks when the stage leaves it out.
const DefaultStageTimeout = 30 * time.Second

// Stage is one step of an application's road to production: the candidate
// is deployed there and checked before it goes on. An application without
// stages goes straight to its production canary.
type Stage struct {
	// Name is the stage's name, e.g. "staging"; [a-z0-9-].
	Name string `yaml:"name"`
	// Environment is the stage's environment id in events (default: Name).
	Environment string `yaml:"environment"`
	// URL is where the stage serves the candidate: the checks run against it.
	URL    string      `yaml:"url"`
	Checks StageChecks `yaml:"checks"`
}

// StageChecks are what a candidate must pass in a stage.
type StageChecks struct {
	// DAST probes the running candidate: requests derived from its OpenAPI
	// spec plus baseline checks (5xx on malformed input, reflected input,
	// SQL error leakage, security headers, CORS).
	DAST *DAST `yaml:"dast"`
	// Contracts are consumer contract files (a consumer's recorded requests
	// and the response fields it relies on), replayed against the stage.
	// Relative paths are relative to rampart.yaml.
	Contracts []string `yaml:"contracts"`
	// Timeout bounds all of the stage's checks (default 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// DAST configures the dynamic scan of a stage.
type DAST struct {
	// OpenAPI is where the candidate's spec is: a path on the stage's URL
	// (e.g. /openapi.json), or an http(s) URL. Empty: baseline checks on
	// Paths only.
	OpenAPI string `yaml:"openapi"`
	// Paths are probed besides those of the spec (default "/").
	Paths []string `yaml:"paths"`
}

// PreProduction is the application's stages before production, in order;
// empty for an application delivered straight to its production canary.
func (a App) PreProduction() []Stage {
	var out []Stage
	for _, s := range a.Stages {
		if s.Name != StageProduction {
			out = append(out, s)
		}
	}
	return out
}

// Stage returns the pre-production stage named name.
func (a App) Stage(name string) (Stage, bool) {
	for _, s := range a.PreProduction() {
		if s.Name == name {
			return s, true
		}
	}
	return Stage{}, false
}

// StageForEnvironment returns the pre-production stage whose environment
// is env.
func (a App) StageForEnvironment(env string) (Stage, bool) {
	for _, s := range a.PreProduction() {
		if s.Environment == env {
			return s, true
		}
	}
	return Stage{}, false
}

// Next is the pre-production stage after the one named name; false when
// production comes next.
func (a App) Next(name string) (Stage, bool) {
	pre := a.PreProduction()
	for i, s := range pre {
		if s.Name == name && i+1 < len(pre) {
			return pre[i+1], true
		}
	}
	return Stage{}, false
}

func stageDefaults(file string, a *App) {
	for i := range a.Stages {
		s := &a.Stages[i]
		if s.Name == StageProduction {
			continue
		}
		if s.Environment == "" {
			s.Environment = s.Name
		}
		if s.Checks.Timeout == 0 {
			s.Checks.Timeout = DefaultStageTimeout
		}
		if d := s.Checks.DAST; d != nil && len(d.Paths) == 0 {
			d.Paths = []string{"/"}
		}
		for j, c := range s.Checks.Contracts {
			if c != "" && !filepath.IsAbs(c) {
				s.Checks.Contracts[j] = filepath.Join(filepath.Dir(file), c)
			}
		}
	}
}

func validateStages(at string, a App) []violation {
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	names := map[string]int{}
	envs := map[string]int{}
	for i, s := range a.Stages {
		path := fmt.Sprintf("%s.stages[%d]", at, i)
		switch {
		case s.Name == "":
			add(path+".name", "is required")
			continue
		case !appName.MatchString(s.Name):
			add(path+".name", "%q must be lower-case letters, digits and dashes", s.Name)
		}
		if j, dup := names[s.Name]; dup {
			add(path+".name", "%q is already used by stages[%d]", s.Name, j)
		}
		names[s.Name] = i
		if s.Name == StageProduction {
			if i != len(a.Stages)-1 {
				add(path+".name", "production is the application's router and canary: it must be the last stage")
			}
			if s.URL != "" || s.Environment != "" || s.Checks.DAST != nil || len(s.Checks.Contracts) > 0 || s.Checks.Timeout != 0 {
				add(path, "production takes no url, environment or checks: it is the application's router, canary and analysis")
			}
			continue
		}
		if !isHTTPURL(s.URL) {
			add(path+".url", "%q is not an http(s) URL (where the stage serves the candidate)", s.URL)
		}
		switch {
		case !appName.MatchString(s.Environment):
			add(path+".environment", "%q must be lower-case letters, digits and dashes", s.Environment)
		case s.Environment == a.Environment:
			add(path+".environment", "%q is the application's production environment", s.Environment)
		default:
			if j, dup := envs[s.Environment]; dup {
				add(path+".environment", "%q is already used by stages[%d]", s.Environment, j)
			}
			envs[s.Environment] = i
		}
		c := s.Checks
		if c.DAST == nil && len(c.Contracts) == 0 {
			add(path+".checks", "a stage must check something: give dast, contracts or both")
		}
		if c.Timeout < 0 {
			add(path+".checks.timeout", "must not be negative")
		}
		if d := c.DAST; d != nil {
			if d.OpenAPI != "" && !strings.HasPrefix(d.OpenAPI, "/") && !isHTTPURL(d.OpenAPI) {
				add(path+".checks.dast.openapi", "%q is neither a path on the stage's URL (/openapi.json) nor an http(s) URL", d.OpenAPI)
			}
			for j, p := range d.Paths {
				if !strings.HasPrefix(p, "/") {
					add(fmt.Sprintf("%s.checks.dast.paths[%d]", path, j), "%q must start with /", p)
				}
			}
		}
		for j, f := range c.Contracts {
			if f == "" {
				add(fmt.Sprintf("%s.checks.contracts[%d]", path, j), "is empty; want a contract file")
			}
		}
	}
	if w := a.Workload; w != nil {
		for _, stage := range slices.Sorted(maps.Keys(w.Stages)) {
			if _, ok := names[stage]; !ok || stage == StageProduction {
				add(at+".workload.stages."+stage, "%q is not a pre-production stage of the application", stage)
			}
		}
	}
	return v
}
