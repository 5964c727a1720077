package checkpoint

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// The ledger key is one Ed25519 key pair. Its file holds exactly one line,
// the note signer key "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>" as
// written by note.GenerateKey; the raw Ed25519 private key for entry
// signatures is derived from the seed in it. The verifier key
// "<name>+<hash>+<base64(0x01 || public key)>" is written next to it as
// "<path>.pub". The key name is the log origin.

const algEd25519 = 1

// Signer signs checkpoints (as notes) and entries (raw Ed25519).
type Signer struct {
	note note.Signer
	priv ed25519.PrivateKey
	vkey string
	mac  []byte // bundle MAC key, derived from the seed
}

// NewSigner parses a note signer key.
func NewSigner(skey string) (*Signer, error) {
	skey = strings.TrimSpace(skey)
	ns, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("parsing ledger signer key: %w", err)
	}
	// PRIVATE+KEY+name+hash+key; note.NewSigner checked the layout, and
	// the base64 key may itself contain '+'.
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(skey, "+", 5)[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, errors.New("parsing ledger signer key: not an Ed25519 key")
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	vkey, err := note.NewEd25519VerifierKey(ns.Name(), priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("deriving ledger verifier key: %w", err)
	}
	mac := sha256.Sum256(append([]byte("rampart ledger bundle MAC key v1\x00"), raw[1:]...))
	return &Signer{note: ns, priv: priv, vkey: vkey, mac: mac[:]}, nil
}

// GenerateSigner returns a new random key named origin and its signer key
// text (the content of the key file).
func GenerateSigner(origin string) (*Signer, string, error) {
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, "", fmt.Errorf("generating ledger key %q: %w", origin, err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		return nil, "", err
	}
	return s, skey, nil
}

// LoadOrCreateSigner reads the signer key at path. If the file does not
// exist it generates a key named origin and writes it (mode 0600, never
// overwriting an existing file). Either way the verifier key is at
// path+".pub": written when missing or different, left alone when it already
// holds the key, so a key mounted read-only with its .pub beside it loads. A
// loaded key whose name is not origin is an error: the key
// name is the log origin, and changing it needs a new key.
func LoadOrCreateSigner(path, origin string) (s *Signer, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s, err = NewSigner(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("loading %s: %w", path, err)
		}
		if s.Name() != origin {
			return nil, false, fmt.Errorf("ledger key %s is named %q but the origin is %q", path, s.Name(), origin)
		}
	case errors.Is(err, fs.ErrNotExist):
		var skey string
		s, skey, err = GenerateSigner(origin)
		if err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("creating directory for ledger key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("creating ledger key: %w", err)
		}
		_, werr := f.WriteString(skey + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("writing ledger key %s: %w", path, werr)
		}
		created = true
	default:
		return nil, false, fmt.Errorf("reading ledger key: %w", err)
	}
	pub := s.VerifierKey() + "\n"
	if cur, err := os.ReadFile(path + ".pub"); err == nil && string(cur) == pub {
		return s, created, nil
	}
	if err := os.WriteFile(path+".pub", []byte(pub), 0o644); err != nil {
		return nil, false, fmt.Errorf("writing ledger verifier key: %w", err)
	}
	return s, created, nil
}

// Name returns the key name, which is the log origin.
func (s *Signer) Name() string { return s.note.Name() }

// VerifierKey returns the note verifier key for s.
func (s *Signer) VerifierKey() string { return s.vkey }

// SignEntry returns the base64 Ed25519 signature over entry bytes b, the
// value of the entry.SignatureHeader.
func (s *Signer) SignEntry(b []byte) string { return entry.Sign(s.priv, b) }

// BundleMAC returns the base64 HMAC-SHA256, with a key derived from the
// ledger key, over an entry bundle: the index of its first entry and the
// leaf hashes of its entries (bundle.LeavesHeader), which pin the entry
// bytes. Only the ledger can compute or check it: it tells the ledger's own
// bundles from messages someone else published on its subject (decision
// 0028); auditors rely on the signed checkpoints instead.
func (s *Signer) BundleMAC(first int64, leaves string) string {
	m := hmac.New(sha256.New, s.mac)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(first))
	m.Write(n[:])
	m.Write([]byte(leaves))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CheckBundleMAC reports whether mac is BundleMAC(first, leaves).
func (s *Signer) CheckBundleMAC(first int64, leaves, mac string) bool {
	return hmac.Equal([]byte(s.BundleMAC(first, leaves)), []byte(mac))
}

// Verifier checks checkpoint and entry signatures against a verifier key.
type Verifier struct {
	note note.Verifier
	pub  ed25519.PublicKey
	vkey string
}

// NewVerifier parses a note verifier key "<name>+<hash>+<base64 key>".
func NewVerifier(vkey string) (*Verifier, error) {
	vkey = strings.TrimSpace(vkey)
	nv, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing ledger verifier key: %w", err)
	}
	// name+hash+key; the base64 key may itself contain '+'.
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algEd25519 {
		return nil, errors.New("parsing ledger verifier key: not an Ed25519 key")
	}
	return &Verifier{note: nv, pub: ed25519.PublicKey(raw[1:]), vkey: vkey}, nil
}

// Verifier returns the verifier for s's key.
func (s *Signer) Verifier() *Verifier {
	v, err := NewVerifier(s.vkey)
	if err != nil {
		// s.vkey was produced by note.NewEd25519VerifierKey from a valid key.
		panic(fmt.Sprintf("ledger verifier key of a valid signer does not parse: %v", err))
	}
	return v
}

// Name returns the key name, which is the log origin.
func (v *Verifier) Name() string { return v.note.Name() }

// Key returns the verifier key text.
func (v *Verifier) Key() string { return v.vkey }

// CheckEntry verifies the base64 signature sig over entry bytes b.
func (v *Verifier) CheckEntry(b []byte, sig string) error {
	return entry.CheckSignature(v.pub, b, sig)
}
