// Package chaos is `rampart chaos`: drills declared in a chaos file, each a
// fault injected into an application's live canary on purpose, and what the
// pipeline must then do (roll back within a time, page, record it). A drill
// is run against a running mesh through its public doors only: the
// deployer's fault routes and the host's kill route (the chaos token), the
// watcher's SIEM webhook, the application's own fault hook, the bus (the
// admin identity) and the ledger's query API. Its result is a
// drill-finished event the ledger records; a failed drill pages (decisions
// 0023, 0029).
package chaos

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
)

// Fault kinds.
const (
	// FaultHTTPErrors: the router answers a share of canary requests 500.
	FaultHTTPErrors = "http-errors"
	// FaultLatency: the router delays every canary request.
	FaultLatency = "latency"
	// FaultMemory: the application's own fault hook makes its canary grow.
	FaultMemory = "memory"
	// FaultSIEM: a SIEM alert about the application reaches the watcher.
	FaultSIEM = "siem"
)

// Kinds lists the fault kinds, in the order the docs show them.
var Kinds = []string{FaultHTTPErrors, FaultLatency, FaultMemory, FaultSIEM}

// Components a fault may kill (fault.kill): stopped mid-canary and
// started again after fault.downtime (decision 0029). The deployer and the
// watcher are on the rollback's path; the notifier only on the page's.
const (
	KillDeployer = "deployer"
	KillWatcher  = "watcher"
	KillNotifier = "notifier"
)

// Killable lists them.
var Killable = []string{KillDeployer, KillWatcher, KillNotifier}

// File is a parsed chaos file.
type File struct {
	Version int `yaml:"version"`
	// Every repeats the whole file on a schedule (`rampart chaos run`
	// without --every); zero runs it once.
	Every       Duration     `yaml:"every"`
	Experiments []Experiment `yaml:"experiments"`
}

// Experiment is one drill.
type Experiment struct {
	Name   string `yaml:"name"`
	Target Target `yaml:"target"`
	Fault  Fault  `yaml:"fault"`
	Expect Expect `yaml:"expect"`
}

// Target is where the fault goes: an application's live canary in a stage.
type Target struct {
	App string `yaml:"app"`
	// Stage is the rollout's environment; empty takes the app's only one.
	Stage string `yaml:"stage"`
	// Wait is how long to wait for a live canary (default 5m).
	Wait Duration `yaml:"wait"`
}

// Fault is what is injected.
type Fault struct {
	Kind string `yaml:"kind"`
	// Ratio of canary requests that fail (http-errors).
	Ratio float64 `yaml:"ratio"`
	// Latency added to each canary request (latency).
	Latency Duration `yaml:"latency"`
	// For bounds a router fault (default 2m, at most 15m); it is cleared
	// as soon as the drill ends anyway.
	For Duration `yaml:"for"`
	// Hook is the application's own fault endpoint, POSTed once (memory).
	Hook string `yaml:"hook"`
	// Severity of the SIEM alert (siem; default high).
	Severity string `yaml:"severity"`
	// Kill, with any kind: the component (deployer, watcher or notifier)
	// is killed when the drill starts and started again after Downtime
	// (default 5s, at most 5m). The fault is injected at once, or, when it
	// goes through the killed component (a router fault with the
	// deployer, a SIEM alert with the watcher), once it is back.
	Kill     string   `yaml:"kill"`
	Downtime Duration `yaml:"downtime"`
}

// Recorded is the fault as the drill's result names it: its kind, or
// kill-<component> for a kill (events.Drill.Fault).
func (f Fault) Recorded() string {
	if f.Kill != "" {
		return "kill-" + f.Kill
	}
	return f.Kind
}

// throughKilled says whether the fault is injected through the component
// it kills, which must be back first.
func (f Fault) throughKilled() bool {
	switch f.Kill {
	case KillDeployer:
		return f.Kind == FaultHTTPErrors || f.Kind == FaultLatency
	case KillWatcher:
		return f.Kind == FaultSIEM
	}
	return false
}

// stopsRollback says whether the killed component is on the rollback's
// path: nothing rolls back while the deployer is down, and nothing is
// detected while the watcher is. A killed notifier only delays the page.
func (f Fault) stopsRollback() bool {
	return f.Kill == KillDeployer || f.Kill == KillWatcher
}

// Expect is what the pipeline must do.
type Expect struct {
	// RollbackWithin: fault start → canary weight 0.
	RollbackWithin Duration `yaml:"rollbackWithin"`
	// Pages the rollout's incident sends (default 1).
	Pages *int `yaml:"pages"`
	// Ledger: the rollback is in the ledger (default true).
	Ledger *bool `yaml:"ledger"`
}

// WantPages is the expected page count.
func (e Expect) WantPages() int {
	if e.Pages == nil {
		return 1
	}
	return *e.Pages
}

// WantLedger says whether the ledger must hold the rollback.
func (e Expect) WantLedger() bool { return e.Ledger == nil || *e.Ledger }

// Detail is the fault's parameters in words.
func (f Fault) Detail() string {
	if f.Kill != "" {
		when := "meanwhile"
		if f.throughKilled() {
			when = "once it is back"
		}
		return fmt.Sprintf("the %s killed for %s; %s, %s", f.Kill, time.Duration(f.Downtime), when, f.ownDetail())
	}
	return f.ownDetail()
}

// ownDetail is the fault's own parameters in words, without the kill.
func (f Fault) ownDetail() string {
	switch f.Kind {
	case FaultHTTPErrors:
		return fmt.Sprintf("%g%% of canary requests answer 500 at the router", f.Ratio*100)
	case FaultLatency:
		return fmt.Sprintf("%s added to every canary request at the router", time.Duration(f.Latency))
	case FaultMemory:
		return "canary memory grown through " + f.Hook
	case FaultSIEM:
		return "a " + f.Severity + " SIEM alert about the application"
	}
	return ""
}

// Duration is a time.Duration written as "30s" in the file.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 2m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Error lists every problem of a chaos file, each at its line.
type Error struct{ Problems []policy.Problem }

func (e *Error) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return "invalid chaos file:\n  " + strings.Join(s, "\n  ")
}

// Load reads and parses the chaos file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read chaos file: %w", err)
	}
	return Parse(path, data)
}

// Default and bounds.
const (
	defaultWait = 5 * time.Minute
	defaultFor  = 2 * time.Minute
	maxFor      = 15 * time.Minute
	maxLatency  = 30 * time.Second
	minEvery    = time.Minute
	// defaultDowntime and maxDowntime bound a kill (maxDowntime is the
	// host's service.MaxDowntime).
	defaultDowntime = 5 * time.Second
	maxDowntime     = 5 * time.Minute
)

// Parse validates the chaos file in data; file names it in messages. Every
// problem is reported, each at its line.
func Parse(file string, data []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: policy.YAMLProblems(file, err)}
	}
	if len(root.Content) == 0 {
		return nil, &Error{Problems: []policy.Problem{{File: file, Msg: "the chaos file is empty"}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, &Error{Problems: policy.YAMLProblems(file, err)}
	}
	v := validator{file: file}
	doc := root.Content[0]
	if f.Version != 1 {
		v.add(line(doc, "version"), "version %d: want 1", f.Version)
	}
	if f.Every != 0 && time.Duration(f.Every) < minEvery {
		v.add(line(doc, "every"), "every %s: at least %s", time.Duration(f.Every), minEvery)
	}
	exps := field(doc, "experiments")
	if len(f.Experiments) == 0 {
		v.add(line(doc, "experiments"), "no experiments")
	}
	names := map[string]bool{}
	for i := range f.Experiments {
		var n *yaml.Node
		if exps != nil && i < len(exps.Content) {
			n = exps.Content[i]
		}
		e := &f.Experiments[i]
		v.experiment(e, n, names)
	}
	if len(v.problems) > 0 {
		return nil, &Error{Problems: v.problems}
	}
	return &f, nil
}

type validator struct {
	file     string
	problems []policy.Problem
}

func (v *validator) add(l int, format string, args ...any) {
	v.problems = append(v.problems, policy.Problem{File: v.file, Line: l, Msg: fmt.Sprintf(format, args...)})
}

// experiment checks e (node n) and fills its defaults.
func (v *validator) experiment(e *Experiment, n *yaml.Node, names map[string]bool) {
	at := func(path ...string) int { return line(n, path...) }
	where := "experiment " + strconv.Quote(e.Name)
	switch {
	case e.Name == "":
		v.add(at(), "an experiment needs a name")
		where = "experiment"
	case names[e.Name]:
		v.add(at("name"), "%s: named twice", where)
	}
	names[e.Name] = true
	if err := events.CheckName("target.app", e.Target.App); err != nil {
		v.add(at("target", "app"), "%s: %v", where, err)
	}
	if e.Target.Stage != "" {
		if err := events.CheckName("target.stage", e.Target.Stage); err != nil {
			v.add(at("target", "stage"), "%s: %v", where, err)
		}
	}
	if e.Target.Wait == 0 {
		e.Target.Wait = Duration(defaultWait)
	}
	f := &e.Fault
	if f.For == 0 {
		f.For = Duration(defaultFor)
	}
	if d := time.Duration(f.For); d < 0 || d > maxFor {
		v.add(at("fault", "for"), "%s: fault.for %s: want at most %s", where, d, maxFor)
	}
	// Each kind takes its own parameters and no other's.
	used := map[string]bool{"ratio": f.Ratio != 0, "latency": f.Latency != 0, "hook": f.Hook != "", "severity": f.Severity != ""}
	own := map[string][]string{FaultHTTPErrors: {"ratio"}, FaultLatency: {"latency"}, FaultMemory: {"hook"}, FaultSIEM: {"severity"}}
	params, ok := own[f.Kind]
	if !ok {
		v.add(at("fault", "kind"), "%s: fault.kind %q: want one of %s", where, f.Kind, strings.Join(Kinds, ", "))
	}
	for _, p := range []string{"ratio", "latency", "hook", "severity"} {
		if ok && used[p] && !slices.Contains(params, p) {
			v.add(at("fault", p), "%s: fault.%s does not apply to a %s fault", where, p, f.Kind)
		}
	}
	switch f.Kind {
	case FaultHTTPErrors:
		if f.Ratio <= 0 || f.Ratio > 1 {
			v.add(at("fault", "ratio"), "%s: fault.ratio %v: want more than 0, at most 1", where, f.Ratio)
		}
	case FaultLatency:
		if d := time.Duration(f.Latency); d <= 0 || d > maxLatency {
			v.add(at("fault", "latency"), "%s: fault.latency %s: want more than 0, at most %s", where, d, maxLatency)
		}
	case FaultMemory:
		if u, err := url.Parse(f.Hook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(at("fault", "hook"), "%s: fault.hook %q: want the application's fault endpoint, an http(s) URL", where, f.Hook)
		}
	case FaultSIEM:
		switch f.Severity {
		case "":
			f.Severity = "high"
		case "critical", "high", "medium", "low":
		default:
			v.add(at("fault", "severity"), "%s: fault.severity %q: want critical, high, medium or low", where, f.Severity)
		}
	}
	x := e.Expect
	switch {
	case f.Kill == "" && f.Downtime != 0:
		v.add(at("fault", "downtime"), "%s: fault.downtime needs fault.kill (one of %s)", where, strings.Join(Killable, ", "))
	case f.Kill == "":
	case !slices.Contains(Killable, f.Kill):
		v.add(at("fault", "kill"), "%s: fault.kill %q: want one of %s", where, f.Kill, strings.Join(Killable, ", "))
	default:
		if f.Downtime == 0 {
			f.Downtime = Duration(defaultDowntime)
		}
		if d := time.Duration(f.Downtime); d <= 0 || d > maxDowntime {
			v.add(at("fault", "downtime"), "%s: fault.downtime %s: want more than 0, at most %s", where, d, maxDowntime)
		} else if w := time.Duration(x.RollbackWithin); w > 0 && w <= d && f.stopsRollback() {
			v.add(at("expect", "rollbackWithin"), "%s: expect.rollbackWithin %s can never pass: the %s is down for %s (fault.downtime)", where, w, f.Kill, d)
		}
	}
	if d := time.Duration(x.RollbackWithin); d <= 0 {
		v.add(at("expect", "rollbackWithin"), "%s: expect.rollbackWithin: want a time, e.g. 30s", where)
	} else if d > time.Duration(f.For) && f.Kind != FaultMemory && f.Kind != FaultSIEM {
		v.add(at("expect", "rollbackWithin"), "%s: expect.rollbackWithin %s is longer than the fault lasts (fault.for %s)", where, d, time.Duration(f.For))
	}
	if x.Pages != nil && *x.Pages < 0 {
		v.add(at("expect", "pages"), "%s: expect.pages %d: want 0 or more", where, *x.Pages)
	}
}

// field is the value node of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// line is the line of the deepest node of path below n that exists.
func line(n *yaml.Node, path ...string) int {
	if n == nil {
		return 0
	}
	l := n.Line
	for _, k := range path {
		if n = field(n, k); n == nil {
			break
		}
		l = n.Line
	}
	return l
}
