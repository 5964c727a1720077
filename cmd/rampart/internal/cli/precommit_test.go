package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Test credentials: shaped like real ones, never issued, and free of the
// word "example" (which Trivy's allow rules exempt).
const (
	testAWSKeyID  = "AKIAQ3EGRTZ7K5N2WXYB"
	testAWSSecret = "Jx9p2Lq7Vw4Rt8Yb3Nm6Kc1Hd5Fg0Sz2Ae7Ui9Oo"
	testToken     = "q8ZfR2mW9xK4vT7nB3cY6hJ1pL5sD0gA"
)

// gitRepo is a temporary repository driven with the git binary.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.email", "dev@acme.test")
	r.git("config", "user.name", "dev")
	r.git("config", "commit.gpgsign", "false")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (r *gitRepo) write(path, content string) {
	r.t.Helper()
	full := filepath.Join(r.dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func TestPrecommitFindsStagedSecrets(t *testing.T) {
	r := newGitRepo(t)
	r.write("README.md", "# shop\n")
	r.git("add", "README.md")
	r.git("commit", "-q", "-m", "init")

	if res := rampart(t, t.Context(), "", "precommit", "-C", r.dir); res.code != 0 || res.stdout != "" {
		t.Fatalf("nothing staged: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	r.write("deploy/credentials.env", "# prod\nAWS_ACCESS_KEY_ID="+testAWSKeyID+"\naws_secret_access_key = \""+testAWSSecret+"\"\n")
	r.write("config/app.yaml", "name: shop\nservice:\n  api_token: "+testToken+"\n")
	r.write("main.go", "package main\n\nfunc main() {}\n")
	r.git("add", ".")
	// The working tree no longer has the token, but the index does: the
	// commit would record the staged content, so that is what is scanned.
	r.write("config/app.yaml", "name: shop\n")

	res := rampart(t, t.Context(), "", "precommit", "-C", filepath.Join(r.dir, "deploy"))
	if res.code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", res.code, res.stdout, res.stderr)
	}
	want := "config/app.yaml:3 high-entropy-token\n" +
		"deploy/credentials.env:2 aws-access-key-id\n" +
		"deploy/credentials.env:3 aws-secret-access-key\n"
	if res.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.stdout, want)
	}
	if !strings.Contains(res.stderr, "3 secret(s) in staged files") {
		t.Errorf("stderr %q", res.stderr)
	}

	// Staging the clean versions (and removing the credentials) passes.
	r.git("rm", "-q", "--cached", "deploy/credentials.env")
	r.git("add", "config/app.yaml")
	if res := rampart(t, t.Context(), "", "precommit", "-C", r.dir); res.code != 0 {
		t.Fatalf("clean index: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestPrecommitOutsideARepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	res := rampart(t, t.Context(), "", "precommit", "-C", t.TempDir())
	if res.code != 1 || !strings.Contains(res.stderr, "not a git repository") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestPrecommitInstall(t *testing.T) {
	r := newGitRepo(t)
	hook := filepath.Join(r.dir, ".git", "hooks", "pre-commit")

	res := rampart(t, t.Context(), "", "precommit", "install", "-C", r.dir)
	if res.code != 0 {
		t.Fatalf("install: exit %d, stderr %q", res.code, res.stderr)
	}
	fi, err := os.Stat(hook)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("hook mode %v is not executable", fi.Mode())
	}
	script, _ := os.ReadFile(hook)
	if !strings.HasPrefix(string(script), "#!/bin/sh\n") || !strings.Contains(string(script), "exec rampart precommit\n") {
		t.Errorf("hook:\n%s", script)
	}
	// Reinstalling replaces our own hook.
	if res := rampart(t, t.Context(), "", "precommit", "install", "-C", r.dir); res.code != 0 {
		t.Fatalf("reinstall: exit %d, stderr %q", res.code, res.stderr)
	}

	// git runs it: a stand-in rampart on PATH that refuses shows the hook
	// is wired to `rampart precommit`.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "rampart"), []byte("#!/bin/sh\necho \"stand-in rampart $*\" >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	r.write("a.txt", "a\n")
	r.git("add", "a.txt")
	cmd := exec.Command("git", "commit", "-q", "-m", "a")
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "stand-in rampart precommit") {
		t.Errorf("git commit with a refusing hook: err %v, output %q", err, out)
	}
}

func TestPrecommitInstallKeepsForeignHook(t *testing.T) {
	r := newGitRepo(t)
	hook := filepath.Join(r.dir, ".git", "hooks", "pre-commit")
	foreign := "#!/bin/sh\nmake lint\n"
	if err := os.WriteFile(hook, []byte(foreign), 0o755); err != nil {
		t.Fatal(err)
	}
	res := rampart(t, t.Context(), "", "precommit", "install", "-C", r.dir)
	if res.code != 1 || !strings.Contains(res.stderr, "--force") {
		t.Fatalf("exit %d, stderr %q, want a refusal naming --force", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(hook); string(b) != foreign {
		t.Fatalf("foreign hook changed to:\n%s", b)
	}
	if res := rampart(t, t.Context(), "", "precommit", "install", "--force", "-C", r.dir); res.code != 0 {
		t.Fatalf("--force: exit %d, stderr %q", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(hook + ".rampart-backup"); string(b) != foreign {
		t.Errorf("backup:\n%s", b)
	}
	if b, _ := os.ReadFile(hook); !strings.Contains(string(b), "rampart precommit") {
		t.Errorf("hook after --force:\n%s", b)
	}
}

// injectable is a handler building SQL from its request: gosec finds it
// twice at the query's line (G202 string concatenation, G701 taint), both
// CWE-89 and so HIGH, which the default gate blocks.
const injectable = `package db

import (
	"database/sql"
	"net/http"
)

func User(db *sql.DB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.Query("SELECT name FROM users WHERE id = " + r.URL.Query().Get("id"))
		if err != nil {
			return
		}
		defer rows.Close()
	}
}
`

func TestPrecommitSAST(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not installed")
	}
	r := newGitRepo(t)
	r.write("go.mod", "module example.test/shop\n\ngo 1.26\n")
	r.write("db/user.go", injectable)
	r.git("add", "go.mod")
	r.git("commit", "-q", "-m", "init")

	// The working tree is analysed, staged or not; the staged files have no
	// secrets, so the SAST alone fails the run.
	res := rampart(t, t.Context(), "", "precommit", "-C", r.dir, "--sast")
	if res.code != 1 {
		t.Fatalf("injectable handler: exit %d, want 1; stdout %q stderr %q", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"db/user.go:10 G202 HIGH sast: SQL string concatenation [CWE-89", "db/user.go:10 G701 HIGH "} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "blocked by the gate policy") {
		t.Errorf("stderr %q", res.stderr)
	}

	policy := filepath.Join(t.TempDir(), "gate.yaml")
	writePolicy := func(expires string, extra string) {
		t.Helper()
		doc := "waivers:\n"
		for _, id := range []string{"G202", "G701"} {
			doc += "  - {id: " + id + ", package: \"db/user.go:10\", owner: dev@acme.test, expires: " + expires + ", reason: test}\n"
		}
		if err := os.WriteFile(policy, []byte(doc+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Waived, with one waiver of a line that has no finding (stale).
	writePolicy("2999-01-01", "  - {id: G204, package: \"db/user.go:3\", owner: dev@acme.test, expires: 2999-01-01}\n")
	res = rampart(t, t.Context(), "", "precommit", "-C", r.dir, "--sast", "--gate-policy", policy)
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("waived: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"0 blocking, 2 waived", "waiver of G204 in db/user.go:3 matches no finding"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("waived: stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	// Expired waivers no longer apply.
	writePolicy("2001-01-01", "")
	res = rampart(t, t.Context(), "", "precommit", "-C", r.dir, "--sast", "--gate-policy", policy)
	if res.code != 1 || !strings.Contains(res.stderr, "waiver by dev@acme.test expired") {
		t.Errorf("expired waivers: exit %d, stderr %q", res.code, res.stderr)
	}

	// The fixed handler passes under the default policy.
	r.write("db/user.go", strings.Replace(injectable,
		`"SELECT name FROM users WHERE id = " + r.URL.Query().Get("id")`, `"SELECT name FROM users WHERE id = ?", r.URL.Query().Get("id")`, 1))
	res = rampart(t, t.Context(), "", "precommit", "-C", r.dir, "--sast")
	if res.code != 0 || res.stdout != "" {
		t.Errorf("fixed: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestPrecommitGatePolicyNeedsSAST(t *testing.T) {
	res := rampart(t, t.Context(), "", "precommit", "--gate-policy", "gate.yaml")
	if res.code != 2 || !strings.Contains(res.stderr, "--gate-policy applies to --sast only") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestPrecommitSASTBadPolicy(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "gate.yaml")
	if err := os.WriteFile(policy, []byte("waivers:\n  - {id: G202}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := rampart(t, t.Context(), "", "precommit", "-C", t.TempDir(), "--sast", "--gate-policy", policy)
	if res.code != 1 || !strings.Contains(res.stderr, "waivers[0].package: required") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}
