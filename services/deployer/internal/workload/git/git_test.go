package git_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rampartci/rampart/pkg/kubetest"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/clustertest"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
	"github.com/rampartci/rampart/services/deployer/internal/workload"
	"github.com/rampartci/rampart/services/deployer/internal/workload/git"
)

func TestMain(m *testing.M) { clustertest.Main(m) }

const (
	repo    = "registry.example.com/shop"
	digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digest2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

var shop = policy.App{Name: "shop", Image: repo}

const kustomization = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
images:
  - name: shop
    newName: registry.example.com/shop
    newTag: "1.0"
`

const values = "replicaCount: 3\nimage: registry.example.com/shop:1.0\n"

// bareRepo is a bare repository made by git itself, with a first commit
// holding the canary's kustomization and the stable slot's Helm values,
// and the file:// URL to reach it.
func bareRepo(t *testing.T) (dir, url string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the file transport runs git-receive-pack")
	}
	dir = filepath.Join(t.TempDir(), "apps.git")
	if out, err := exec.Command("git", "init", "--bare", "--initial-branch=main", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init --bare: %v\n%s", err, out)
	}
	url = "file://" + dir
	seed := writer(t, url, true)
	seed.write(t, map[string]string{"shop/canary/kustomization.yaml": kustomization, "shop/stable/values.yaml": values}, "first")
	return dir, url
}

// other is another writer's clone of the repository.
type other struct {
	repo *gogit.Repository
	dir  string
}

func writer(t *testing.T, url string, empty bool) *other {
	t.Helper()
	dir := t.TempDir()
	var r *gogit.Repository
	var err error
	if empty {
		r, err = gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{InitOptions: gogit.InitOptions{DefaultBranch: "refs/heads/main"}})
		if err == nil {
			_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}})
		}
	} else {
		r, err = gogit.PlainClone(dir, false, &gogit.CloneOptions{URL: url, ReferenceName: "refs/heads/main"})
	}
	if err != nil {
		t.Fatal(err)
	}
	return &other{repo: r, dir: dir}
}

// write commits files on the clone's main and pushes; after pulling first
// unless the clone is new.
func (o *other) write(t *testing.T, files map[string]string, msg string) plumbing.Hash {
	t.Helper()
	wt, err := o.repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.repo.Head(); err == nil {
		if err := wt.Pull(&gogit.PullOptions{ReferenceName: "refs/heads/main"}); err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		p := filepath.Join(o.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			t.Fatal(err)
		}
	}
	sig := &object.Signature{Name: "Someone Else", Email: "else@example.com", When: time.Now()}
	h, err := wt.Commit(msg, &gogit.CommitOptions{Author: sig})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.repo.Push(&gogit.PushOptions{RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"}}); err != nil {
		t.Fatalf("the other writer's push: %v", err)
	}
	return h
}

// history is the bare repository's main, newest first: each commit's
// message and the files it changed, following first parents, with the
// number of parents of each.
type entry struct {
	hash    plumbing.Hash
	msg     string
	parents int
	files   map[string]string
}

func history(t *testing.T, dir string) []entry {
	t.Helper()
	r, err := gogit.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Reference("refs/heads/main", true)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	c, err := r.CommitObject(head.Hash())
	for err == nil {
		e := entry{hash: c.Hash, msg: c.Message, parents: c.NumParents(), files: map[string]string{}}
		tree, _ := c.Tree()
		_ = tree.Files().ForEach(func(f *object.File) error {
			s, _ := f.Contents()
			e.files[f.Name] = s
			return nil
		})
		out = append(out, e)
		if c.NumParents() == 0 {
			break
		}
		c, err = c.Parent(0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func conf(url string) policy.Workload {
	return policy.Workload{Type: policy.WorkloadGit, Namespace: "shop", Stable: "shop", Canary: "shop-canary", ProgressDeadline: time.Minute,
		Git: &policy.GitWorkload{URL: url, Branch: "main", Author: policy.DefaultGitAuthor,
			Canary: policy.GitTarget{Path: "shop/canary/kustomization.yaml", Image: "shop"},
			Stable: policy.GitTarget{Path: "shop/stable/values.yaml", ValuesKey: "image"}}}
}

func newWorkload(t *testing.T, c policy.Workload, client kubernetes.Interface) *git.Workload {
	t.Helper()
	if client == nil {
		client = fake.NewClientset()
	}
	w, err := git.New(c, client, git.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func release(ctx context.Context) context.Context {
	return rollout.WithChange(ctx, rollout.Change{RolloutID: "shop-0a1b2c3d4e", ChainID: "chain-42"})
}

// One commit per change, naming the rollout and the chain; the same
// change again makes no commit; a tag is refused.
func TestCommitsPerStep(t *testing.T) {
	dir, url := bareRepo(t)
	w := newWorkload(t, conf(url), nil)
	ctx := release(t.Context())
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, repo+"@"+digest1); err != nil {
		t.Fatal(err)
	}
	if err := w.Deploy(ctx, shop, rollout.SlotCanary, repo+"@"+digest1); err != nil {
		t.Fatal(err)
	}
	if err := w.Deploy(ctx, shop, rollout.SlotStable, repo+"@"+digest1); err != nil {
		t.Fatal(err)
	}
	err := w.Deploy(ctx, shop, rollout.SlotCanary, repo+":2.0")
	if !errors.Is(err, workload.ErrNotDigest) {
		t.Fatalf("a tag: %v", err)
	}
	h := history(t, dir)
	if len(h) != 3 {
		t.Fatalf("%d commits, want first + canary + stable: %v", len(h), h)
	}
	stable, canary := h[0], h[1]
	for _, e := range []entry{stable, canary} {
		if !strings.Contains(e.msg, "Release-Chain: chain-42") || !strings.Contains(e.msg, "Rollout: shop-0a1b2c3d4e") || e.parents != 1 {
			t.Errorf("commit %q (%d parents)", e.msg, e.parents)
		}
	}
	if !strings.HasPrefix(canary.msg, "shop: canary runs "+repo+"@"+digest1) || !strings.HasPrefix(stable.msg, "shop: stable runs ") {
		t.Errorf("messages %q, %q", canary.msg, stable.msg)
	}
	k := canary.files["shop/canary/kustomization.yaml"]
	if !strings.Contains(k, "    newName: registry.example.com/shop\n    digest: "+digest1+"\n") || strings.Contains(k, "newTag") {
		t.Errorf("kustomization:\n%s", k)
	}
	if v := stable.files["shop/stable/values.yaml"]; v != "replicaCount: 3\nimage: "+repo+"@"+digest1+"\n" {
		t.Errorf("values:\n%s", v)
	}
	if canary.files["shop/stable/values.yaml"] != values {
		t.Errorf("the canary's commit changed the stable values")
	}
}

// Someone else pushes between our commit and our push: git refuses the
// push, the change is made again on their head, and both survive; nothing
// is forced.
func TestPushRetriedOnTheNewHead(t *testing.T) {
	dir, url := bareRepo(t)
	w := newWorkload(t, conf(url), nil)
	them := writer(t, url, false)
	var theirs []plumbing.Hash
	pushes := 0
	git.SetBeforePush(w, func() {
		pushes++
		if pushes <= 2 { // two races lost in a row
			theirs = append(theirs, them.write(t, map[string]string{"shop/canary/kustomization.yaml": strings.Replace(kustomization,
				"deployment.yaml", fmt.Sprintf("deployment.yaml\n  - extra-%d.yaml", pushes), 1)}, fmt.Sprintf("their change %d", pushes)))
		}
	})
	if err := w.Deploy(release(t.Context()), shop, rollout.SlotCanary, repo+"@"+digest2); err != nil {
		t.Fatal(err)
	}
	if pushes != 3 {
		t.Fatalf("%d pushes, want 3 (two refused, then accepted)", pushes)
	}
	h := history(t, dir)
	if len(h) != 4 || h[1].hash != theirs[1] || h[2].hash != theirs[0] {
		t.Fatalf("history %v: want ours on their two commits on the first", h)
	}
	k := h[0].files["shop/canary/kustomization.yaml"]
	if !strings.Contains(k, "extra-2.yaml") || !strings.Contains(k, "digest: "+digest2) { // their last file, with our image
		t.Fatalf("our change was not made on their head:\n%s", k)
	}
}

// A branch that keeps moving is given up on, with nothing forced.
func TestPushGivesUp(t *testing.T) {
	dir, url := bareRepo(t)
	w, err := git.New(conf(url), fake.NewClientset(), git.Options{Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	them := writer(t, url, false)
	n := 0
	git.SetBeforePush(w, func() {
		n++
		them.write(t, map[string]string{"README": fmt.Sprint(n)}, fmt.Sprintf("theirs %d", n))
	})
	err = w.Deploy(release(t.Context()), shop, rollout.SlotCanary, repo+"@"+digest2)
	if err == nil || !strings.Contains(err.Error(), "gave up after 2 attempts") {
		t.Fatalf("err = %v", err)
	}
	h := history(t, dir)
	if len(h) != 3 || h[0].msg != "theirs 2" || h[1].msg != "theirs 1" {
		t.Fatalf("history %v", h)
	}
}

// The repository is only half of it: the workload waits until the
// Deployment, as the GitOps controller applies the commit, serves the
// image with its replicas available (read from a real apiserver).
func TestProgressReadsTheDeployment(t *testing.T) {
	_, url := bareRepo(t)
	srv := kubetest.Shared(t)
	ns := "git-progress"
	srv.Namespace(t, ns, nil)
	admin := srv.Clientset(t)
	one := int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: repo + ":1.0"}}}}}}
	if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(clustertest.DeployerConfig(t, srv, ns))
	if err != nil {
		t.Fatal(err)
	}
	c := conf(url)
	c.Namespace = ns
	w := newWorkload(t, c, cs)
	since := time.Now()
	if err := w.Deploy(release(t.Context()), shop, rollout.SlotCanary, repo+"@"+digest1); err != nil {
		t.Fatal(err)
	}
	p, err := w.Progress(t.Context(), shop, rollout.SlotCanary, repo+"@"+digest1, since)
	if err != nil || p.Available || !strings.Contains(p.Waiting, "not "+repo+"@"+digest1) {
		t.Fatalf("before the controller applied the commit: %+v %v", p, err)
	}
	// The GitOps controller applies the commit, the Deployment controller
	// rolls it out.
	d, err = admin.AppsV1().Deployments(ns).Get(t.Context(), "shop-canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = repo + "@" + digest1
	if d, err = admin.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
	if _, err := admin.AppsV1().Deployments(ns).UpdateStatus(t.Context(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = w.Progress(t.Context(), shop, rollout.SlotCanary, repo+"@"+digest1, since)
	if err != nil || !p.Available {
		t.Fatalf("after: %+v %v", p, err)
	}
}

// A stage of workload.stages gets its image in its own git target, one
// commit naming the stage's slot; the other slots' entries are untouched. A
// stage without a target is refused without a commit.
func TestStageCommit(t *testing.T) {
	dir, url := bareRepo(t)
	c := conf(url)
	c.Stages = map[string]string{"staging": "shop-staging"}
	c.Git.Stages = map[string]policy.GitTarget{"staging": {Path: "shop/stable/values.yaml", ValuesKey: "staging.image"}}
	w := newWorkload(t, c, nil)
	if !w.RunsStage(shop, "staging") || w.RunsStage(shop, "qa") {
		t.Fatal("RunsStage does not follow git.stages")
	}
	ctx := rollout.WithChange(t.Context(), rollout.Change{ChainID: "chain-42"})
	if err := w.Deploy(ctx, shop, rollout.StageSlot("staging"), repo+"@"+digest1); err != nil {
		t.Fatal(err)
	}
	if err := w.Deploy(ctx, shop, rollout.StageSlot("qa"), repo+"@"+digest1); err == nil || !strings.Contains(err.Error(), "no stage:qa slot") {
		t.Fatalf("deploy to a stage without a target: %v", err)
	}
	h := history(t, dir)
	if len(h) != 2 || !strings.HasPrefix(h[0].msg, "shop: stage:staging runs "+repo+"@"+digest1) || !strings.Contains(h[0].msg, "Release-Chain: chain-42") {
		t.Fatalf("history %v", h)
	}
	if v := h[0].files["shop/stable/values.yaml"]; v != "replicaCount: 3\nimage: registry.example.com/shop:1.0\nstaging:\n  image: "+repo+"@"+digest1+"\n" {
		t.Errorf("values:\n%s", v)
	}
	if h[0].files["shop/canary/kustomization.yaml"] != kustomization {
		t.Error("the stage's commit changed the canary")
	}
}
