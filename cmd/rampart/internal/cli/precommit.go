package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rampartci/rampart/services/scanner/secrets"
)

func init() {
	register("precommit", "scan the staged files for secrets (a git pre-commit hook)", runPrecommit)
	register("precommit install", "install `rampart precommit` as the repository's pre-commit hook", runPrecommitInstall)
}

// hookMarker identifies a hook this command wrote, so reinstalling replaces
// it while a hook written by someone else is left alone.
const hookMarker = "# rampart-precommit-hook"

func runPrecommit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "precommit", "[-C DIR]\n\n"+
		"Scans the contents of the staged files (what the commit will record, not the working tree)\n"+
		"with the scanner's secret rules: Trivy's built-in rules (cloud keys, tokens, private keys)\n"+
		"and a high-entropy check for tokens assigned to secret-sounding names. Prints\n"+
		"file:line rule-id for each finding and exits 1 if there is any, 0 if there is none.")
	dir := fs.String("C", ".", "run in `DIR` (any directory of the repository)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	root, err := gitOutput(ctx, *dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	root = strings.TrimSpace(root)
	// Added, copied, modified and renamed files: a deletion stages nothing to
	// scan. Submodule changes are other repositories' commits.
	list, err := gitOutput(ctx, root, "diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR", "--ignore-submodules=all")
	if err != nil {
		return err
	}
	scanner := secrets.New()
	found := 0
	for _, path := range strings.Split(list, "\x00") {
		if path == "" {
			continue
		}
		// ":path" is the staged blob; "./" keeps a path that starts with
		// a colon or a dash from being read as something else.
		content, err := gitOutput(ctx, root, "show", ":./"+path)
		if err != nil {
			return err
		}
		findings, err := scanner.Scan(path, strings.NewReader(content))
		if err != nil {
			return fmt.Errorf("scan %s: %w", path, err)
		}
		for _, f := range findings {
			fmt.Fprintf(e.stdout, "%s:%d %s\n", f.Path, f.Line, f.RuleID)
		}
		found += len(findings)
	}
	if found > 0 {
		return fmt.Errorf("%d secret(s) in staged files; remove them (or bypass once with git commit --no-verify)", found)
	}
	return nil
}

func runPrecommitInstall(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "precommit install", "[-C DIR] [--force]\n\n"+
		"Writes an executable pre-commit hook that runs `rampart precommit` (rampart must be on\n"+
		"PATH when git runs the hook). A hook Rampart did not write is left alone unless --force,\n"+
		"which keeps it as pre-commit.rampart-backup.")
	dir := fs.String("C", ".", "run in `DIR` (any directory of the repository)")
	force := fs.Bool("force", false, "replace a pre-commit hook that Rampart did not write")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	// --git-path honours core.hooksPath and linked worktrees.
	hooks, err := gitOutput(ctx, *dir, "rev-parse", "--path-format=absolute", "--git-path", "hooks")
	if err != nil {
		return err
	}
	hooks = strings.TrimSpace(hooks)
	path := filepath.Join(hooks, "pre-commit")

	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read existing hook: %w", err)
	case bytes.Contains(old, []byte(hookMarker)):
		// Ours: replace it.
	case !*force:
		return fmt.Errorf("%s exists and was not written by rampart; rerun with --force to replace it (it is kept as pre-commit.rampart-backup)", path)
	default:
		if err := os.WriteFile(path+".rampart-backup", old, 0o755); err != nil {
			return fmt.Errorf("back up existing hook: %w", err)
		}
		fmt.Fprintf(e.stdout, "kept the previous hook as %s.rampart-backup\n", path)
	}
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return fmt.Errorf("create hooks directory: %w", err)
	}
	script := "#!/bin/sh\n" + hookMarker + "\n" +
		"# Refuses a commit whose staged files contain secrets. Written by `rampart precommit install`;\n" +
		"# bypass once with `git commit --no-verify`.\n" +
		"exec rampart precommit\n"
	// Write then rename, so a half-written hook never runs.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return fmt.Errorf("write hook: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // WriteFile's mode is masked by umask
		return fmt.Errorf("write hook: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install hook: %w", err)
	}
	fmt.Fprintf(e.stdout, "installed %s\n", path)
	return nil
}

// gitOutput runs git in dir and returns its standard output; the error
// carries git's standard error.
func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), msg)
	}
	return out.String(), nil
}
