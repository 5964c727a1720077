// Package git is the deployer's workload for clusters that belong to a
// GitOps controller (Argo CD, Flux): instead of patching Deployments, the
// deployer commits the approved digest into the repository the controller
// applies (a kustomization's images entry, or a key of a Helm values
// file), pushes, and reads the Deployments from the API server until they
// serve it.
//
// One commit per change, naming the rollout and the release chain. A push
// is never forced: when another writer pushed first, the change is made
// again on the new head and pushed again, a bounded number of times.
package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	"k8s.io/client-go/kubernetes"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/deployer/internal/rollout"
	"github.com/rampartci/rampart/services/deployer/internal/workload"
	"github.com/rampartci/rampart/services/deployer/internal/workload/kube"
)

// DefaultAttempts bounds the pushes of one change when others keep
// pushing first.
const DefaultAttempts = 5

// Options are a workload's optional settings.
type Options struct {
	// Logger receives the commits (default: discard).
	Logger *slog.Logger
	// Now is the clock of commits and deadlines (default time.Now).
	Now func() time.Time
	// Attempts bounds the pushes of one change (default DefaultAttempts).
	Attempts int
}

// Workload commits one application's images to its repository.
type Workload struct {
	conf    policy.Workload
	git     policy.GitWorkload
	status  *kube.Workload // reads the Deployments
	log     *slog.Logger
	now     func() time.Time
	tries   int
	name    string // of the author
	email   string
	refName plumbing.ReferenceName

	mu   sync.Mutex // one change at a time; guards repo
	repo *gogit.Repository
	// beforePush, when set (tests), runs before each push.
	beforePush func()
}

var (
	_ rollout.Workload = (*Workload)(nil)
	_ rollout.Awaiter  = (*Workload)(nil)
)

// New returns the workload writing to conf.Git's repository; client reads
// the Deployments conf names (kube.NewClient builds one).
func New(conf policy.Workload, client kubernetes.Interface, opts Options) (*Workload, error) {
	if conf.Git == nil || conf.Git.URL == "" || conf.Git.Branch == "" {
		return nil, errors.New("git workload: git.url and git.branch are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	status, err := kube.New(conf, client, kube.Options{Logger: opts.Logger, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("git workload: %w", err)
	}
	name, email, ok := strings.Cut(strings.TrimSuffix(conf.Git.Author, ">"), " <")
	if !ok {
		return nil, fmt.Errorf("git workload: author %q is not \"Name <email>\"", conf.Git.Author)
	}
	return &Workload{
		conf: conf, git: *conf.Git, status: status, now: opts.Now, tries: opts.Attempts, name: name, email: email,
		refName: plumbing.NewBranchReferenceName(conf.Git.Branch),
		log:     opts.Logger.With("workload", policy.WorkloadGit, "repository", conf.Git.URL, "branch", conf.Git.Branch),
	}, nil
}

// Deploy commits artifact's digest as slot's image and pushes it. A
// repository that has it already gets no commit.
func (w *Workload) Deploy(ctx context.Context, app policy.App, slot rollout.Slot, artifact string) error {
	image, err := workload.Image(artifact)
	if err != nil {
		return err
	}
	target, err := w.target(slot)
	if err != nil {
		return err
	}
	change := rollout.ChangeOf(ctx)
	msg := fmt.Sprintf("%s: %s runs %s\n\nRollout: %s\nRelease-Chain: %s\n", app.Name, slot, image, change.RolloutID, change.ChainID)
	w.mu.Lock()
	defer w.mu.Unlock()
	edit := func(content []byte) ([]byte, error) {
		if target.Kustomization() {
			return setKustomizeImage(content, target.Image, image)
		}
		return setValue(content, target.ValuesKey, image)
	}
	hash, err := w.commit(ctx, target.Path, edit, msg)
	if err != nil {
		return fmt.Errorf("git workload: %s slot of %s: %w", slot, app.Name, err)
	}
	if hash.IsZero() {
		w.log.Debug("repository has the image already", "app", app.Name, "slot", slot, "image", image)
		return nil
	}
	w.log.Info("image committed", "app", app.Name, "slot", slot, "image", image, "commit", hash.String(), "chain", change.ChainID)
	return nil
}

// target is where slot's image is written.
func (w *Workload) target(slot rollout.Slot) (policy.GitTarget, error) {
	switch slot {
	case rollout.SlotStable:
		return w.git.Stable, nil
	case rollout.SlotCanary:
		return w.git.Canary, nil
	}
	stage, _ := rollout.StageOf(slot)
	if t, ok := w.git.Stages[stage]; ok {
		return t, nil
	}
	return policy.GitTarget{}, fmt.Errorf("git workload: no %s slot (no git.stages entry)", slot)
}

// RunsStage implements rollout.StageRunner: the stages git.stages names
// (the policy requires a Deployment for each in workload.stages).
func (w *Workload) RunsStage(_ policy.App, stage string) bool {
	_, ok := w.git.Stages[stage]
	return ok
}

// Progress reads slot's Deployment: the GitOps controller has applied the
// commit when the Deployment runs the image, and the rollout is available
// as the kubernetes workload judges it.
func (w *Workload) Progress(ctx context.Context, app policy.App, slot rollout.Slot, artifact string, since time.Time) (rollout.Progress, error) {
	return w.status.Progress(ctx, app, slot, artifact, since)
}

// commit makes the change edit to file path on the branch's head, commits
// and pushes it; when the push is refused because the branch moved, it
// starts again from the new head. It returns the zero hash when edit
// changes nothing.
func (w *Workload) commit(ctx context.Context, path string, edit func([]byte) ([]byte, error), msg string) (plumbing.Hash, error) {
	auth, err := w.auth()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var lastErr error
	for attempt := 1; attempt <= w.tries; attempt++ {
		base, err := w.sync(ctx, auth)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		hash, err := w.commitOn(base, path, edit, msg)
		if err != nil || hash.IsZero() {
			return hash, err
		}
		if w.beforePush != nil {
			w.beforePush()
		}
		err = w.repo.PushContext(ctx, &gogit.PushOptions{
			RemoteName: gogit.DefaultRemoteName,
			RefSpecs:   []config.RefSpec{config.RefSpec(w.refName + ":" + w.refName)}, // no "+": never forced
			Auth:       auth,
			// The branch must still be where the change was made.
			RequireRemoteRefs: []config.RefSpec{config.RefSpec(base.String() + ":" + w.refName.String())},
		})
		if err == nil {
			return hash, nil
		}
		moved, ferr := w.moved(ctx, auth, base)
		if ferr != nil || !moved {
			return plumbing.ZeroHash, fmt.Errorf("push to %s: %w", w.git.URL, err)
		}
		w.log.Info("branch moved under the push; making the change again on the new head", "attempt", attempt, "err", err)
		lastErr = err
	}
	return plumbing.ZeroHash, fmt.Errorf("push to %s: the branch kept moving, gave up after %d attempts: %w", w.git.URL, w.tries, lastErr)
}

// sync clones the repository on first use, fetches, and resets the local
// branch and worktree to the remote branch's head, which it returns.
func (w *Workload) sync(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, error) {
	if w.repo == nil {
		repo, err := gogit.CloneContext(ctx, memory.NewStorage(), memfs.New(), &gogit.CloneOptions{
			URL: w.git.URL, Auth: auth, ReferenceName: w.refName, SingleBranch: true,
		})
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("clone %s branch %s: %w", w.git.URL, w.git.Branch, err)
		}
		w.repo = repo
	} else if err := w.fetch(ctx, auth); err != nil {
		return plumbing.ZeroHash, err
	}
	remote, err := w.repo.Reference(plumbing.NewRemoteReferenceName(gogit.DefaultRemoteName, w.git.Branch), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("remote branch %s: %w", w.git.Branch, err)
	}
	wt, err := w.repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if err := wt.Reset(&gogit.ResetOptions{Commit: remote.Hash(), Mode: gogit.HardReset}); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("reset to %s: %w", remote.Hash(), err)
	}
	return remote.Hash(), nil
}

func (w *Workload) fetch(ctx context.Context, auth transport.AuthMethod) error {
	err := w.repo.FetchContext(ctx, &gogit.FetchOptions{RemoteName: gogit.DefaultRemoteName, Auth: auth,
		RefSpecs: []config.RefSpec{config.RefSpec("+" + w.refName + ":" + plumbing.NewRemoteReferenceName(gogit.DefaultRemoteName, w.git.Branch))}})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", w.git.URL, err)
	}
	return nil
}

// moved reports whether the remote branch is no longer at base: someone
// else pushed, and the refused push is worth making again.
func (w *Workload) moved(ctx context.Context, auth transport.AuthMethod, base plumbing.Hash) (bool, error) {
	if err := w.fetch(ctx, auth); err != nil {
		return false, err
	}
	remote, err := w.repo.Reference(plumbing.NewRemoteReferenceName(gogit.DefaultRemoteName, w.git.Branch), true)
	if err != nil {
		return false, err
	}
	return remote.Hash() != base, nil
}

// commitOn edits path in the worktree (reset to base) and commits it; the
// zero hash when the edit changes nothing.
func (w *Workload) commitOn(base plumbing.Hash, path string, edit func([]byte) ([]byte, error), msg string) (plumbing.Hash, error) {
	wt, err := w.repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	f, err := wt.Filesystem.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return plumbing.ZeroHash, fmt.Errorf("%s is not in %s at %s", path, w.git.URL, base)
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	before, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	after, err := edit(before)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: %w", path, err)
	}
	if string(after) == string(before) {
		return plumbing.ZeroHash, nil
	}
	out, err := wt.Filesystem.Create(path)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := out.Write(after); err != nil {
		_ = out.Close()
		return plumbing.ZeroHash, err
	}
	if err := out.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := wt.Add(path); err != nil {
		return plumbing.ZeroHash, err
	}
	sig := &object.Signature{Name: w.name, Email: w.email, When: w.now()}
	return wt.Commit(msg, &gogit.CommitOptions{Author: sig, Committer: sig})
}

// auth is the https credentials from the policy's references, read at each
// change so that a rotated token is used; nil without any.
func (w *Workload) auth() (transport.AuthMethod, error) {
	if w.git.Password.IsZero() {
		return nil, nil
	}
	user, err := w.git.Username.Resolve()
	if err != nil {
		return nil, fmt.Errorf("git username: %w", err)
	}
	pass, err := w.git.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("git password: %w", err)
	}
	return &githttp.BasicAuth{Username: user, Password: pass}, nil
}
