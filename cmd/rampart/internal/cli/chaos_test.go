package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `chaos check` and `chaos run` refuse a bad file with every problem at its
// line, a schedule under a minute, and a data directory without the
// drill's tokens, before touching any mesh.
func TestChaosCommandsCheckFirst(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "version: 1\nexperiments:\n  - name: x\n    target: {app: shop}\n    fault: {kind: siem}\n    expect: {rollbackWithin: 10s}\n")
	bad := write("bad.yaml", "version: 1\nexperiments:\n  - name: x\n    target: {app: shop}\n    fault: {kind: meteor}\n    expect: {rollbackWithin: 10s}\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"chaos", "check", good}, 0, "good.yaml: 1 experiment"},
		{[]string{"chaos", "check", bad}, 1, `bad.yaml:5: experiment "x": fault.kind "meteor"`},
		{[]string{"chaos", "run", bad}, 1, `bad.yaml:5:`},
		{[]string{"chaos", "run", good, "--every", "1s"}, 2, "--every 1s: at least 1m"},
		{[]string{"chaos", "run"}, 2, "want one chaos file"},
		{[]string{"chaos", "run", good, "--data", filepath.Join(dir, "none")}, 1, "viewer.token"},
	} {
		r := rampart(t, t.Context(), "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("rampart %v: exit %d, want %d with %q\n%s%s", tc.args, r.code, tc.code, tc.want, r.stdout, r.stderr)
		}
	}
}
