package service

import (
	"flag"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/policy"
)

func TestSecretFlags(t *testing.T) {
	var refs SecretFlags
	var a, b, c policy.Secret
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	refs.Var(fs, &a, "a", "a secret")
	refs.Var(fs, &b, "b", "b secret")
	refs.Var(fs, &c, "c", "c secret")
	if err := fs.Parse([]string{"--a", "env:TOKEN", "--b", "file:/run/b", "--c", "hunter2"}); err != nil {
		t.Fatal(err)
	}
	if a != (policy.Secret{Env: "TOKEN"}) || b != (policy.Secret{File: "/run/b"}) || !c.IsZero() {
		t.Fatalf("a=%v b=%v c=%v", a, b, c)
	}
	err := refs.Err()
	if err == nil || !strings.Contains(err.Error(), "--c: want a reference") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Err = %v", err)
	}
}
