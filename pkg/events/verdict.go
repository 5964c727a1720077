package events

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// Scan verdicts are signed by the scanner with Ed25519 so the deployer can
// refuse a verdict it did not issue. The signature is over the verdict's
// canonical bytes: the CDEvent (context, subject, customData) re-encoded
// compactly, with customData.signature empty. Every field a consumer acts
// on, including the event id, time, chain and target, is covered.

var (
	// ErrUnsigned is returned for a verdict that carries no signature.
	ErrUnsigned = errors.New("scan verdict is not signed")
	// ErrBadSignature is returned for a verdict whose signature does not
	// verify under the scanner's key.
	ErrBadSignature = errors.New("scan verdict signature does not verify")
)

// SignScan builds a scan-finished event for s and signs it with key.
func SignScan(m Meta, s Scan, key ed25519.PrivateKey) (cloudevents.Event, error) {
	s.Signature = ""
	unsigned, err := NewScanFinished(m, s)
	if err != nil {
		return cloudevents.Event{}, err
	}
	cd, err := Parse(unsigned)
	if err != nil {
		return cloudevents.Event{}, err
	}
	msg, err := canonicalVerdict(cd)
	if err != nil {
		return cloudevents.Event{}, err
	}
	s.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	// The same meta again: id and time are fixed by the unsigned event.
	m.ID, m.Time = unsigned.ID(), unsigned.Time()
	return NewScanFinished(m, s)
}

// VerifyScan reads a scan-finished event and checks its signature with pub.
func VerifyScan(ev cloudevents.Event, pub ed25519.PublicKey) (Scan, error) {
	var s Scan
	cd, err := decodeCustom(ev, &s, TypeTestSuiteFinished)
	if err != nil {
		return Scan{}, err
	}
	if s.Signature == "" {
		return Scan{}, fmt.Errorf("event %s: %w", ev.ID(), ErrUnsigned)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return Scan{}, fmt.Errorf("event %s: %w: signature is not base64", ev.ID(), ErrBadSignature)
	}
	msg, err := canonicalVerdict(cd)
	if err != nil {
		return Scan{}, err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
		return Scan{}, fmt.Errorf("event %s: %w", ev.ID(), ErrBadSignature)
	}
	return s, nil
}

// canonicalVerdict is the signed form of a verdict's CDEvent.
func canonicalVerdict(cd *CDEvent) ([]byte, error) {
	var custom map[string]json.RawMessage
	if err := json.Unmarshal(cd.CustomData, &custom); err != nil {
		return nil, fmt.Errorf("verdict customData: %w", err)
	}
	delete(custom, "signature")
	c := *cd
	var err error
	if c.CustomData, err = marshal(custom); err != nil {
		return nil, err
	}
	if c.Subject.Content, err = compact(cd.Subject.Content); err != nil {
		return nil, err
	}
	if c.CustomData, err = compact(c.CustomData); err != nil {
		return nil, err
	}
	return marshal(c)
}

func compact(raw json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// LoadOrCreateVerdictKey reads the scanner's Ed25519 signing key from path
// (base64 of the 32-byte seed), creating it with mode 0600 on first use. The
// public key is written beside it as path + ".pub" (base64), for deployers.
func LoadOrCreateVerdictKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(nil)
		if gerr != nil {
			return nil, gerr
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("verdict key: %w", err)
		}
		if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("verdict key: %w", err)
		}
		pub := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
		if err := os.WriteFile(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("verdict key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verdict key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("verdict key %s: not the base64 of a %d-byte Ed25519 seed", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// LoadVerdictPublicKey reads a scanner public key (base64) from path.
func LoadVerdictPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scanner public key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("scanner public key %s: not the base64 of a %d-byte Ed25519 public key", path, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(key), nil
}
