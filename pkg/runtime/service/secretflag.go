package service

import (
	"flag"
	"fmt"
	"strings"

	"github.com/rampartci/rampart/pkg/policy"
)

// SecretFlags binds secret references to command-line flags: a flag takes
// env:NAME or file:PATH, never the secret itself. A value that is not a
// reference is not kept and not echoed (the flag package would print it in
// its own error); Err reports which flags got one.
type SecretFlags struct {
	inline []string
}

// Var registers flag name on fs, setting s.
func (f *SecretFlags) Var(fs *flag.FlagSet, s *policy.Secret, name, usage string) {
	fs.Var(secretValue{s: s, name: name, flags: f}, name, usage+", by reference: env:NAME or file:PATH")
}

// Err names the flags given a secret instead of a reference, or is nil.
func (f *SecretFlags) Err() error {
	if f == nil || len(f.inline) == 0 {
		return nil
	}
	return fmt.Errorf("--%s: want a reference, env:NAME or file:PATH, never the secret itself", strings.Join(f.inline, ", --"))
}

type secretValue struct {
	s     *policy.Secret
	name  string
	flags *SecretFlags
}

func (v secretValue) String() string {
	if v.s == nil || v.s.IsZero() {
		return ""
	}
	return v.s.String()
}

func (v secretValue) Set(val string) error {
	kind, ref, ok := strings.Cut(val, ":")
	switch {
	case val == "":
		*v.s = policy.Secret{}
	case ok && kind == "env" && ref != "":
		*v.s = policy.Secret{Env: ref}
	case ok && kind == "file" && ref != "":
		*v.s = policy.Secret{File: ref}
	default:
		*v.s = policy.Secret{}
		v.flags.inline = append(v.flags.inline, v.name)
	}
	return nil
}
