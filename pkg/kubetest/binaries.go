package kubetest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrMissing is wrapped by Lookup when a tool is not built.
var ErrMissing = errors.New("tool not built (make tools)")

// RequireEnv, set to 1, turns a missing tool into a test failure rather
// than a skip; CI sets it.
const RequireEnv = "RAMPART_REQUIRE_KUBE"

// ToolsEnv names the directory `make tools` builds into; without it the
// repository's bin/tools is used.
const ToolsEnv = "RAMPART_TOOLS"

// Required reports whether missing tools must fail the tests.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Lookup finds a tool built by `make tools` (kube-apiserver, etcd, helm):
// the file named by RAMPART_<NAME> (RAMPART_KUBE_APISERVER), else the tool
// in $RAMPART_TOOLS, else in bin/tools of the repository the working
// directory is in, else on PATH.
func Lookup(name string) (string, error) {
	env := "RAMPART_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if p := os.Getenv(env); p != "" {
		if isExec(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s=%s: not an executable file: %w", env, p, ErrMissing)
	}
	var dirs []string
	if d := os.Getenv(ToolsEnv); d != "" {
		dirs = append(dirs, d)
	}
	if root := repoRoot(); root != "" {
		dirs = append(dirs, filepath.Join(root, "bin", "tools"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExec(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s: not in $%s, %v or PATH: %w", name, env, dirs, ErrMissing)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// repoRoot is the nearest directory above the working directory that holds
// go.work, or "".
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
