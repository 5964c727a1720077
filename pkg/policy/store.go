package policy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Store holds the current policy. A reload that fails validation leaves the
// current policy in place: an invalid policy never replaces a valid one.
type Store struct {
	path    string
	current atomic.Pointer[Policy]
	modTime time.Time
}

// NewStore loads the policy at path; it fails if that policy is invalid.
func NewStore(path string) (*Store, error) {
	s := &Store{path: path}
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// StoreOf holds a policy that did not come from a file (tests, the demo).
func StoreOf(p *Policy) *Store {
	s := &Store{}
	s.current.Store(p)
	return s
}

// Current is the policy in force.
func (s *Store) Current() *Policy { return s.current.Load() }

// Reload reads the file again. It reports whether the policy changed; on
// error the policy in force stays.
func (s *Store) Reload() (bool, error) {
	if s.path == "" {
		return false, nil
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return false, fmt.Errorf("reload policy: %w", err)
	}
	p, err := Load(s.path)
	if err != nil {
		return false, err
	}
	s.modTime = fi.ModTime()
	old := s.current.Swap(p)
	return old == nil || old.Digest != p.Digest, nil
}

// Watch reloads the file whenever its modification time changes, checking
// every interval, until ctx ends. Failed reloads are logged and the policy in
// force stays.
func (s *Store) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if s.path == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(s.path)
		if err != nil || fi.ModTime().Equal(s.modTime) {
			continue
		}
		changed, err := s.Reload()
		if err != nil {
			logger.Error("policy reload refused; keeping the policy in force", "file", s.path, "in_force", s.Current().Digest, "err", err)
			continue
		}
		if changed {
			logger.Info("policy reloaded", "file", s.path, "digest", s.Current().Digest)
		}
	}
}
