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
	"time"

	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/services/scanner/sast"
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
	fs := newFlags(e, "precommit", "[-C DIR] [--sast [--gate-policy FILE]]\n\n"+
		"Scans the contents of the staged files (what the commit will record, not the working tree)\n"+
		"with the scanner's secret rules: Trivy's built-in rules (cloud keys, tokens, private keys)\n"+
		"and a high-entropy check for tokens assigned to secret-sounding names. Prints\n"+
		"file:line rule-id for each finding and exits 1 if there is any, 0 if there is none.\n\n"+
		"With --sast it also runs the commit scan's Go SAST (gosec, offline, nothing of the tree run)\n"+
		"over the repository's working tree and judges the findings under the gate policy, as a\n"+
		"commit scan would: it prints file:line rule severity title for each blocking finding and\n"+
		"exits 1 if any blocks. The first run loads every package with the go command (a cold build\n"+
		"cache can take many minutes); later runs reuse the cache.")
	dir := fs.String("C", ".", "run in `DIR` (any directory of the repository)")
	withSAST := fs.Bool("sast", false, "also run the Go SAST over the working tree and fail on what the gate blocks")
	policyFile := fs.String("gate-policy", "", "gate policy `FILE` for --sast: blocking severities and waivers (default: block Critical and High)")
	timeout := fs.Duration("sast-timeout", 30*time.Minute, "bound on the Go SAST, loading included")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if !*withSAST && *policyFile != "" {
		return fmt.Errorf("%w: --gate-policy applies to --sast only", errUsage)
	}
	pol := gate.Default()
	if *policyFile != "" {
		var err error
		if pol, err = gate.LoadFile(*policyFile); err != nil {
			return err
		}
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
	var errs []error
	if found > 0 {
		errs = append(errs, fmt.Errorf("%d secret(s) in staged files; remove them (or bypass once with git commit --no-verify)", found))
	}
	if *withSAST {
		errs = append(errs, precommitSAST(ctx, e, root, pol, *timeout))
	}
	return errors.Join(errs...)
}

// precommitSAST runs the commit scan's Go SAST over the working tree at
// root and judges its findings under pol now: the blocking ones are
// printed, one a line, and make it fail. Waivers that matched no finding
// are named, since a waiver of file:line goes stale when the line moves.
func precommitSAST(ctx context.Context, e *env, root string, pol *gate.Policy, timeout time.Duration) error {
	a, err := sast.New(sast.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	rep, err := a.Analyze(ctx, root)
	if err != nil {
		return err
	}
	d := pol.Evaluate(rep.Findings, time.Now())
	for _, f := range d.Blocking {
		fmt.Fprintf(e.stdout, "%s %s %s %s\n", f.Package, f.ID, f.Severity, f.Title)
	}
	for _, r := range d.Reasons {
		if strings.Contains(r, "waiver by") { // an expired waiver
			fmt.Fprintf(e.stderr, "%s\n", r)
		}
	}
	used := map[int]bool{}
	for _, w := range d.Waived {
		used[w.Waiver.Line] = true
	}
	for _, w := range pol.Waivers {
		if !used[w.Line] && time.Now().Before(w.Expires) {
			fmt.Fprintf(e.stderr, "%s:%d: waiver of %s in %s matches no finding; remove it\n", pol.URI, w.Line, w.ID, w.Package)
		}
	}
	for _, s := range rep.Incomplete {
		fmt.Fprintf(e.stderr, "incomplete: %s\n", s)
	}
	fmt.Fprintf(e.stderr, "%s; %d findings, %d blocking, %d waived, in %s\n",
		rep.Summary(), len(rep.Findings), len(d.Blocking), len(d.Waived), rep.Duration.Round(time.Second/10))
	if len(d.Blocking) > 0 {
		return fmt.Errorf("Go SAST: %d finding(s) blocked by the gate policy (%s); fix them, or waive them in the gate policy with an owner and an expiry", len(d.Blocking), pol.URI)
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
