package policy

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Workload types.
const (
	// WorkloadKubernetes: the deployer sets the image of the application's
	// Deployments through the Kubernetes API.
	WorkloadKubernetes = "kubernetes"
	// WorkloadGit: the deployer commits the image into a Git repository
	// that Argo CD or Flux applies, and reads the Deployments to see it
	// served.
	WorkloadGit = "git"
)

// Defaults for what a workload leaves out.
var (
	DefaultProgressDeadline = 10 * time.Minute
	DefaultScaleDownDelay   = 30 * time.Second
	DefaultGitBranch        = "main"
	DefaultGitAuthor        = "Rampart <rampart@localhost>"
)

// Workload says what makes a release run in the application's two slots.
// Without one (the default) the deployer only moves traffic and something
// else runs the versions, as the demo does.
type Workload struct {
	Type string `yaml:"type"`
	// Namespace, Stable and Canary name the application's two Deployments.
	// The kubernetes workload sets their image; the git workload reads
	// them to see the committed image served.
	Namespace string `yaml:"namespace"`
	Stable    string `yaml:"stable"`
	Canary    string `yaml:"canary"`
	// Container is the container whose image is the application's; empty:
	// the only container, or the one running the application's image.
	Container string `yaml:"container"`
	// Kubeconfig is a path; empty means in-cluster configuration.
	Kubeconfig string `yaml:"kubeconfig"`
	// ProgressDeadline bounds the wait for a Deployment to serve a new
	// image with all its replicas available (default 10m); the
	// Deployment's own progress deadline (ProgressDeadlineExceeded) ends
	// the wait sooner. Either aborts the rollout.
	ProgressDeadline time.Duration `yaml:"progressDeadline"`
	// ScaleDownDelay is how long after a rollback the canary Deployment
	// keeps its pods (for inspection, and for connections to drain)
	// before it is scaled to 0: 30s when it is not set, at once for 0s.
	// Never nil once the policy is parsed.
	ScaleDownDelay *time.Duration `yaml:"scaleDownDelay"`
	// Stages names the Deployment that runs each pre-production stage
	// (stage name → Deployment, "namespace/name" when it is not in
	// Namespace). The deployer deploys a candidate there, waits until it
	// serves it, and only then announces the stage, whose checks run
	// against it. A stage not named here is deployed by other means.
	Stages map[string]string `yaml:"stages"`
	Git    *GitWorkload      `yaml:"git"`
}

// GitWorkload is a repository the cluster's GitOps controller applies.
type GitWorkload struct {
	// URL is the repository: https:// (or file:// on the deployer's own
	// disk; http:// without credentials). SSH is not supported: its keys
	// would be a second kind of secret.
	URL string `yaml:"url"`
	// Branch is pushed to (default main); never forced.
	Branch string `yaml:"branch"`
	// Stable and Canary are where each slot's image is written; Stages
	// where each stage of Workload.Stages gets its own.
	Stable GitTarget            `yaml:"stable"`
	Canary GitTarget            `yaml:"canary"`
	Stages map[string]GitTarget `yaml:"stages"`
	// Username and Password authenticate over https (a token as the
	// password); references only, never values.
	Username Secret `yaml:"username"`
	Password Secret `yaml:"password"`
	// Author of the commits, "Name <email>" (default Rampart <rampart@localhost>).
	Author string `yaml:"author"`
}

// GitTarget is one file and the entry in it that holds a slot's image:
// either a kustomization's images[] entry (by its name) or a Helm values
// key (dotted path to the image string).
type GitTarget struct {
	Path      string `yaml:"path"`
	Image     string `yaml:"image"`
	ValuesKey string `yaml:"valuesKey"`
}

// StageDeployment is the namespace and name of the Deployment that runs
// stage; ok is false for a stage the workload does not run.
func (w *Workload) StageDeployment(stage string) (namespace, name string, ok bool) {
	ref, ok := w.Stages[stage]
	if !ok {
		return "", "", false
	}
	if ns, n, cut := strings.Cut(ref, "/"); cut {
		return ns, n, true
	}
	return w.Namespace, ref, true
}

// Kustomization reports whether the target is a kustomization images entry.
func (g GitTarget) Kustomization() bool { return g.Image != "" }

func applyWorkloadDefaults(w *Workload) {
	if w == nil {
		return
	}
	if w.ProgressDeadline == 0 {
		w.ProgressDeadline = DefaultProgressDeadline
	}
	if w.ScaleDownDelay == nil {
		w.ScaleDownDelay = new(DefaultScaleDownDelay)
	}
	if g := w.Git; g != nil {
		if g.Branch == "" {
			g.Branch = DefaultGitBranch
		}
		if g.Author == "" {
			g.Author = DefaultGitAuthor
		}
	}
}

// kubeName is a DNS-1123 label (namespaces) or subdomain (Deployments).
var (
	kubeLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	kubeSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	author        = regexp.MustCompile(`^[^<>]+ <[^<>@\s]+@[^<>\s]+>$`)
	valuesKey     = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func validateWorkload(at string, w *Workload) []violation {
	if w == nil {
		return nil
	}
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	if w.Type != WorkloadKubernetes && w.Type != WorkloadGit {
		add(at+".type", "%q is not a workload; want kubernetes or git", w.Type)
	}
	if !kubeLabel.MatchString(w.Namespace) {
		add(at+".namespace", "%q is not a Kubernetes namespace name", w.Namespace)
	}
	for field, name := range map[string]string{"stable": w.Stable, "canary": w.Canary} {
		if !kubeSubdomain.MatchString(name) {
			add(at+"."+field, "%q is not a Deployment name", name)
		}
	}
	if w.Stable != "" && w.Stable == w.Canary {
		add(at+".canary", "must differ from stable: the canary runs beside the stable Deployment")
	}
	seen := map[string]string{w.Namespace + "/" + w.Stable: "stable", w.Namespace + "/" + w.Canary: "canary"}
	for _, stage := range slices.Sorted(maps.Keys(w.Stages)) {
		ns, name, _ := w.StageDeployment(stage)
		p := at + ".stages." + stage
		switch {
		case !kubeLabel.MatchString(ns) || !kubeSubdomain.MatchString(name):
			add(p, "%q is not a Deployment ([namespace/]name)", w.Stages[stage])
		case seen[ns+"/"+name] != "":
			add(p, "Deployment %s/%s already runs %s", ns, name, seen[ns+"/"+name])
		default:
			seen[ns+"/"+name] = "stage " + stage
		}
	}
	if w.Container != "" && !kubeLabel.MatchString(w.Container) {
		add(at+".container", "%q is not a container name", w.Container)
	}
	if w.ProgressDeadline < time.Second {
		add(at+".progressDeadline", "%s must be at least 1s", w.ProgressDeadline)
	}
	if w.ScaleDownDelay != nil && *w.ScaleDownDelay < 0 {
		add(at+".scaleDownDelay", "must not be negative")
	}
	switch {
	case w.Type == WorkloadGit && w.Git == nil:
		add(at+".git", "is required for workload type git (url, stable, canary)")
	case w.Type == WorkloadKubernetes && w.Git != nil:
		add(at+".git", "is only for workload type git")
	case w.Git != nil:
		v = append(v, validateGit(at+".git", w.Git)...)
		for _, stage := range slices.Sorted(maps.Keys(w.Stages)) {
			if _, ok := w.Git.Stages[stage]; !ok {
				add(at+".git.stages", "has no target for stage %s: give where its image is written", stage)
			}
		}
		for _, stage := range slices.Sorted(maps.Keys(w.Git.Stages)) {
			if _, ok := w.Stages[stage]; !ok {
				add(at+".stages", "has no Deployment for stage %s, whose image git.stages writes", stage)
			}
		}
	}
	return v
}

func validateGit(at string, g *GitWorkload) []violation {
	var v []violation
	add := func(path, format string, args ...any) { v = append(v, violation{path, fmt.Sprintf(format, args...)}) }
	u, err := url.Parse(g.URL)
	switch {
	case g.URL == "":
		add(at+".url", "is required (https:// or file://)")
	case err != nil || (u.Scheme != "https" && u.Scheme != "file" && u.Scheme != "http"):
		add(at+".url", "%q is not an https or file URL", g.URL)
	case u.User != nil:
		add(at+".url", "must not carry credentials; use username and password references")
	}
	if g.Branch != "" && (strings.ContainsAny(g.Branch, " ~^:?*[\\") || strings.Contains(g.Branch, "..") ||
		strings.HasPrefix(g.Branch, "-") || strings.HasSuffix(g.Branch, "/") || strings.HasSuffix(g.Branch, ".lock")) {
		add(at+".branch", "%q is not a branch name", g.Branch)
	}
	targets := map[string]GitTarget{"stable": g.Stable, "canary": g.Canary}
	fields := []string{"stable", "canary"}
	for _, stage := range slices.Sorted(maps.Keys(g.Stages)) {
		targets["stages."+stage] = g.Stages[stage]
		fields = append(fields, "stages."+stage)
	}
	writes := map[GitTarget]string{}
	for _, field := range fields {
		t, p := targets[field], at+"."+field
		switch {
		case t.Path == "":
			add(p+".path", "is required: the file in the repository")
		case strings.HasPrefix(t.Path, "/") || strings.Contains("/"+t.Path+"/", "/../"):
			add(p+".path", "%q must be relative and stay inside the repository", t.Path)
		}
		switch {
		case t.Image == "" && t.ValuesKey == "":
			add(p, "give image (a kustomization images entry) or valuesKey (a Helm values key)")
		case t.Image != "" && t.ValuesKey != "":
			add(p, "give image or valuesKey, not both")
		case t.ValuesKey != "" && !valuesKey.MatchString(t.ValuesKey):
			add(p+".valuesKey", "%q is not a dotted key such as canary.image", t.ValuesKey)
		}
		if other, dup := writes[t]; dup && t.Path != "" {
			add(p, "writes the same entry as %s", other)
		}
		writes[t] = field
	}
	for field, s := range map[string]Secret{"username": g.Username, "password": g.Password} {
		if s.Env != "" && s.File != "" {
			add(at+"."+field, "give env or file, not both")
		}
	}
	if g.Username.IsZero() != g.Password.IsZero() {
		add(at+".password", "username and password go together")
	}
	if u != nil && (u.Scheme == "http") && !g.Password.IsZero() {
		add(at+".url", "credentials are sent over https only, not %q", g.URL)
	}
	if g.Author != "" && !author.MatchString(g.Author) {
		add(at+".author", "%q is not \"Name <email>\"", g.Author)
	}
	return v
}
