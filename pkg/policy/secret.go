package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Secret is a reference to a secret: an environment variable or a file. The
// policy never holds the value, and String never shows it.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// IsZero reports whether the reference is empty.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" }

// String names the reference, never the value.
func (s Secret) String() string {
	if s.Env != "" {
		return "env:" + s.Env
	}
	if s.File != "" {
		return "file:" + s.File
	}
	return "unset"
}

// Resolve reads the secret's value.
func (s Secret) Resolve() (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("secret %s: environment variable is not set", s)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", s, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret %s: file is empty", s)
		}
		return v, nil
	}
	return "", errors.New("secret reference is unset")
}
