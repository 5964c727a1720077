package natsauth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"
)

// User is an identity as the server knows it: the public half of its nkey
// and its permissions.
type User struct {
	Name        string
	PublicKey   string // "U…"
	Permissions Permissions
}

// KeyFile is where EnsureKeys keeps the seed of the identity name in dir.
func KeyFile(dir, name string) string { return filepath.Join(dir, name+".nk") }

// EnsureKeys makes sure dir holds an nkey user seed for each name
// (<dir>/<name>.nk, mode 0600), creating the missing ones, and returns the
// users the server must know: each name's public key and permissions.
func EnsureKeys(dir string, names ...string) ([]User, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("NATS keys: %w", err)
	}
	users := make([]User, 0, len(names))
	for _, name := range names {
		perms, err := PermissionsOf(name)
		if err != nil {
			return nil, err
		}
		pub, err := EnsureKey(KeyFile(dir, name))
		if err != nil {
			return nil, fmt.Errorf("NATS key of %s: %w", name, err)
		}
		users = append(users, User{Name: name, PublicKey: pub, Permissions: perms})
	}
	return users, nil
}

// EnsureKey reads the nkey user seed in path, or creates one there (mode
// 0600), and returns its public key.
func EnsureKey(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", err
		}
		seed, err := kp.Seed()
		if err != nil {
			return "", err
		}
		// O_EXCL: two processes starting at once never overwrite each
		// other's key; the loser reads the winner's.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return EnsureKey(path)
		}
		if err != nil {
			return "", err
		}
		_, werr := f.Write(append(seed, '\n'))
		if err := errors.Join(werr, f.Close()); err != nil {
			return "", err
		}
		return kp.PublicKey()
	}
	if err != nil {
		return "", err
	}
	return PublicKey(data)
}

// PublicKey is the public key of a user seed file's contents (a bare seed
// or a decorated one, as in a .creds file).
func PublicKey(seedFile []byte) (string, error) {
	kp, err := nkeys.ParseDecoratedNKey(bytes.TrimSpace(seedFile))
	if err != nil {
		return "", fmt.Errorf("not an nkey seed: %w", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", errors.New("not a user nkey (want a seed starting with SU)")
	}
	return pub, nil
}

// ServerConfig is the authorization block of a nats-server configuration
// file that gives users their permissions: what an external server needs
// to run Rampart's services under the same identities as the embedded one.
func ServerConfig(users []User) string {
	var b strings.Builder
	b.WriteString("# Rampart's NATS identities (generated; see docs/security.md)\nauthorization {\n  users = [\n")
	for _, u := range users {
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %s\n      permissions: {\n", u.Name, u.PublicKey)
		writeRule(&b, "publish", u.Permissions.Publish)
		writeRule(&b, "subscribe", u.Permissions.Subscribe)
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func writeRule(b *strings.Builder, name string, r Rule) {
	fmt.Fprintf(b, "        %s: {\n", name)
	for _, l := range []struct {
		key      string
		subjects []string
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		if len(l.subjects) == 0 {
			continue
		}
		quoted := make([]string, len(l.subjects))
		for i, s := range l.subjects {
			quoted[i] = `"` + s + `"`
		}
		fmt.Fprintf(b, "          %s: [%s]\n", l.key, strings.Join(quoted, ", "))
	}
	b.WriteString("        }\n")
}
