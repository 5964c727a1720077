package events

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalidName is wrapped by CheckName's errors.
var ErrInvalidName = errors.New("invalid name")

// MaxName is the longest name CheckName accepts: a DNS label.
const MaxName = 63

// nameRE is the rule of names that become NATS subject tokens: an RFC 1123
// DNS label, as rampart.yaml's application names are.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckName checks a name that becomes a subject token (an application
// name, the last token of rampart.<kind>.<app>): 1 to 63 lower-case letters,
// digits and dashes, starting and ending with a letter or digit. Every
// ingress applies it to the names it takes from outside, so that no input
// can make a subject the bus refuses. what names the field in the error,
// which quotes at most the first 64 bytes of s.
func CheckName(what, s string) error {
	if nameRE.MatchString(s) {
		return nil
	}
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidName, what)
	}
	shown := fmt.Sprintf("%q", s)
	switch {
	case len(s) > 64:
		shown = fmt.Sprintf("%q… (%d bytes)", s[:64], len(s))
	case len(s) > MaxName:
		shown = fmt.Sprintf("%q (%d bytes)", s, len(s))
	}
	return fmt.Errorf("%w: %s %s: want 1 to %d lower-case letters, digits and dashes, starting and ending with a letter or digit",
		ErrInvalidName, what, shown, MaxName)
}
