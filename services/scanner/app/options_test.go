package app_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/services/scanner/app"
)

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	parse := func(args ...string) (app.Options, error) {
		opts := app.DefaultOptions()
		fs := flag.NewFlagSet("scanner", flag.ContinueOnError)
		opts.BindFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		_, err := app.New(opts)
		return opts, err
	}
	t.Setenv("RAMPART_TEST_GITHUB_SECRET", "s3cret")
	opts, err := parse("--cache-dir", dir, "--verdict-key", filepath.Join(dir, "verdict.key"),
		"--github-webhook-secret", "env:RAMPART_TEST_GITHUB_SECRET", "--fixture-db")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if opts.GitHubSecret != (policy.Secret{Env: "RAMPART_TEST_GITHUB_SECRET"}) || !opts.FixtureDB {
		t.Errorf("options %+v", opts)
	}
	if _, err := os.Stat(filepath.Join(dir, "verdict.key.pub")); err != nil {
		t.Errorf("public key not written: %v", err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"secret given inline", []string{"--cache-dir", dir, "--verdict-key", filepath.Join(dir, "k"), "--gitlab-webhook-token", "hunter2"}, "--gitlab-webhook-token: want a reference"},
		{"no cache dir", []string{"--verdict-key", filepath.Join(dir, "k")}, "--cache-dir is required"},
		{"no key", []string{"--cache-dir", dir}, "--verdict-key is required"},
		{"two replicas", []string{"--cache-dir", dir, "--verdict-key", filepath.Join(dir, "k"), "--kv-replicas", "2"}, "--kv-replicas 2: want 1, 3 or 5"},
		{"unset secret", []string{"--cache-dir", dir, "--verdict-key", filepath.Join(dir, "k"), "--registry-webhook-token", "env:RAMPART_TEST_UNSET"}, "registry webhook token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the secret: %v", err)
			}
		})
	}
}

func TestLoadRegistries(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RAMPART_TEST_REG_PASSWORD", "pw")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(s string) string {
		p := filepath.Join(dir, "registries.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	regs, err := app.LoadRegistries(write(`
registries:
  registry.example.com:
    username: ci
    password: {env: RAMPART_TEST_REG_PASSWORD}
  ghcr.io:
    token: {file: ` + token + `}
  127.0.0.1:5000:
    insecure: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]app.Registry{
		"registry.example.com": {Username: "ci", Password: "pw"},
		"ghcr.io":              {Token: "tok"},
		"127.0.0.1:5000":       {Insecure: true},
	}
	for h, r := range want {
		if regs[h] != r {
			t.Errorf("%s = %+v, want %+v", h, regs[h], r)
		}
	}
	for _, bad := range []string{
		"registries:\n  r.example.com:\n    pasword: {env: X}\n",
		"registries:\n  r.example.com:\n    username: ci\n",
		"registries:\n  r.example.com:\n    password: {env: RAMPART_TEST_UNSET}\n",
	} {
		if _, err := app.LoadRegistries(write(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
