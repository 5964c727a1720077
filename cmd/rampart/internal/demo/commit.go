package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

// Commit makes a git repository (with the git binary) holding files,
// commits them, and announces the commit on the bus as a CI system or the
// Git webhook does. It returns the commit's SHA.
func (e *Env) Commit(ctx context.Context, name string, files map[string]string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(e.dataDir, "repos", name))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=Demo", "-c", "user.email=demo@rampart.local", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", args[0], err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := git("init", "-q"); err != nil {
		return "", err
	}
	for path, content := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := git("add", "-A"); err != nil {
		return "", err
	}
	if _, err := git("commit", "-q", "-m", "Add "+name); err != nil {
		return "", err
	}
	sha, err := git("rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	ev, err := events.NewCommit(events.Meta{ID: "commit:" + sha, Source: "/demo/git", ChainID: "change-" + sha[:12], App: App},
		events.Commit{Repository: "demo/" + name, RepoURL: "file://" + dir, SHA: sha, Ref: "refs/heads/main", Author: "Demo", Message: "Add " + name})
	if err != nil {
		return "", err
	}
	_, err = e.bus.Publish(ctx, ev)
	return sha, err
}

// WaitVerdict waits for the scanner's verdict on target (an image digest's
// purl or a commit SHA).
func (e *Env) WaitVerdict(ctx context.Context, sha string, timeout time.Duration) (events.Scan, error) {
	s, _, err := e.rec.wait(ctx, timeout, 0, func(s Seen) bool {
		sc, err := events.ScanOf(s.Event)
		return err == nil && sc.Target == sha
	})
	if err != nil {
		return events.Scan{}, fmt.Errorf("verdict on commit %s: %w", sha, err)
	}
	sc, _ := events.ScanOf(s.Event)
	return sc, nil
}
