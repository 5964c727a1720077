// Package natsauth is who may do what on Rampart's NATS: one identity per
// service and one for the operator (Admin), each an nkey, and the
// permissions of each (Grants, PermissionsOf), which the embedded server
// enforces and an external server is configured with (ServerConfig). It
// also generates the keys of the embedded default (EnsureKeys) and turns an
// nkey seed or a .creds file into connection options (Identity).
//
// Decision record: docs/decisions/0013-nats-identities.md.
package natsauth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Identity is how a client proves who it is: an nkey seed file or a .creds
// file (a user JWT and its seed, for servers in decentralized JWT mode).
type Identity struct {
	// Name is the identity's name (a service, or Admin): its client
	// connections use the inbox prefix InboxPrefix(Name), the only
	// subjects it may subscribe to.
	Name string
	// NKeyFile holds an nkey user seed ("SU…"), as `nk -gen user` writes it.
	NKeyFile string
	// CredsFile is a .creds file as `nsc` writes it.
	CredsFile string
}

// IsZero reports whether the identity names no key: the connection would
// be anonymous, which Rampart's servers refuse.
func (id Identity) IsZero() bool { return id.NKeyFile == "" && id.CredsFile == "" }

// ErrNoIdentity: a connection was about to be made without a key.
var ErrNoIdentity = errors.New("no NATS identity: Rampart's NATS refuses anonymous connections")

// Options are the connection options that authenticate as id and keep its
// replies under its own inbox prefix.
func (id Identity) Options() ([]nats.Option, error) {
	if id.NKeyFile != "" && id.CredsFile != "" {
		return nil, fmt.Errorf("NATS identity %s: give an nkey seed file or a .creds file, not both", id.Name)
	}
	var auth nats.Option
	switch {
	case id.CredsFile != "":
		if _, err := os.Stat(id.CredsFile); err != nil {
			return nil, fmt.Errorf("NATS identity %s: .creds file: %w", id.Name, err)
		}
		auth = nats.UserCredentials(id.CredsFile)
	case id.NKeyFile != "":
		var err error
		if auth, err = nats.NkeyOptionFromSeed(id.NKeyFile); err != nil {
			return nil, fmt.Errorf("NATS identity %s: nkey seed %s: %w", id.Name, id.NKeyFile, err)
		}
	default:
		return nil, fmt.Errorf("%w (identity %q)", ErrNoIdentity, id.Name)
	}
	opts := []nats.Option{auth}
	if id.Name != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(id.Name)))
	}
	return opts, nil
}

// InboxPrefix is the inbox prefix of the identity name: replies to its
// requests (JetStream API answers, publish acks, pulled messages) arrive on
// <prefix>.>, which only it may subscribe to.
func InboxPrefix(name string) string {
	return "_INBOX_" + strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, name)
}
