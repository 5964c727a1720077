package app

import (
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenOptions(t *testing.T) {
	dir := t.TempDir()
	file := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	parse := func(args ...string) Options {
		var o Options
		fs := flag.NewFlagSet("deployer", flag.ContinueOnError)
		o.BindFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		o.ScannerKey = key
		return o
	}

	o := parse("--operator-token", "file:"+file("op", "op-token"), "--viewer-token", "file:"+file("view", "view-token"))
	a, err := New(o)
	if err != nil || a.tokens.Operator != "op-token" || a.tokens.Viewer != "view-token" {
		t.Fatalf("New: %+v, %v", a, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--operator-token", "s3cret"}, "--operator-token: want a reference"},
		{[]string{"--operator-token", "file:" + file("a", "same"), "--viewer-token", "file:" + file("b", "same")}, "are the same token"},
		{[]string{"--viewer-token", "file:" + filepath.Join(dir, "missing")}, "--viewer-token"},
		{[]string{"--kv-replicas", "2"}, "--kv-replicas 2: want 1, 3 or 5"},
	} {
		o := parse(tc.args...)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
