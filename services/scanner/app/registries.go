package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/rampartci/rampart/pkg/policy"
)

// registriesFile is the --registries file:
//
//	registries:
//	  registry.example.com:          # host[:port] as in image references
//	    username: ci
//	    password: {env: REGISTRY_PASSWORD}
//	  ghcr.io:
//	    token: {file: /run/secrets/ghcr-token}
//	  127.0.0.1:5000:
//	    insecure: true               # plain HTTP or unverified TLS
//
// Secrets are references, never values; unknown fields are errors.
type registriesFile struct {
	Registries map[string]struct {
		Username string        `yaml:"username"`
		Password policy.Secret `yaml:"password"`
		Token    policy.Secret `yaml:"token"`
		Insecure bool          `yaml:"insecure"`
	} `yaml:"registries"`
}

// LoadRegistries reads a registry credentials file and resolves its
// secrets. Credentials are only ever sent to their own host.
func LoadRegistries(path string) (map[string]Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registries: %w", err)
	}
	var f registriesFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("registries %s: %w", path, err)
	}
	out := map[string]Registry{}
	for host, r := range f.Registries {
		reg := Registry{Username: r.Username, Insecure: r.Insecure}
		if !r.Password.IsZero() {
			if reg.Password, err = r.Password.Resolve(); err != nil {
				return nil, fmt.Errorf("registries %s: %s password: %w", path, host, err)
			}
		}
		if !r.Token.IsZero() {
			if reg.Token, err = r.Token.Resolve(); err != nil {
				return nil, fmt.Errorf("registries %s: %s token: %w", path, host, err)
			}
		}
		if reg.Username != "" && reg.Password == "" {
			return nil, fmt.Errorf("registries %s: %s: username without a password", path, host)
		}
		out[host] = reg
	}
	return out, nil
}
