// Package kv keeps a service's state as JSON values in a JetStream key-value
// bucket. Every write is create-only or a compare-and-swap on the revision
// that was read, so two replicas never both act on one key and nobody loses
// another's write without knowing: a lost race is ErrConflict, and Update
// re-reads and decides again.
package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrNotFound is returned for a key that holds no value.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a lost compare-and-swap: someone else wrote the key
	// since it was read.
	ErrConflict = errors.New("changed concurrently")
)

// Store is a bucket of values of type T.
type Store[T any] struct {
	kv jetstream.KeyValue
}

// New keeps values of type T in kv.
func New[T any](kv jetstream.KeyValue) *Store[T] { return &Store[T]{kv: kv} }

// Entry is a value with the revision it was read at (0: not stored yet).
type Entry[T any] struct {
	Key      string
	Value    T
	Revision uint64
}

// Get reads key; ErrNotFound when it holds nothing.
func (s *Store[T]) Get(ctx context.Context, key string) (Entry[T], error) {
	e := Entry[T]{Key: key}
	raw, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return e, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(raw.Value(), &e.Value); err != nil {
		return e, fmt.Errorf("decode %s: %w", key, err)
	}
	e.Revision = raw.Revision()
	return e, nil
}

// Put writes e.Value at e.Key if the key is still at e.Revision (0: if it
// does not exist yet), and returns the entry at its new revision.
func (s *Store[T]) Put(ctx context.Context, e Entry[T]) (Entry[T], error) {
	data, err := json.Marshal(e.Value)
	if err != nil {
		return e, fmt.Errorf("encode %s: %w", e.Key, err)
	}
	var rev uint64
	if e.Revision == 0 {
		rev, err = s.kv.Create(ctx, e.Key, data)
	} else {
		rev, err = s.kv.Update(ctx, e.Key, data, e.Revision)
	}
	if isConflict(err) {
		return e, fmt.Errorf("%s: %w", e.Key, ErrConflict)
	}
	if err != nil {
		return e, fmt.Errorf("write %s: %w", e.Key, err)
	}
	e.Revision = rev
	return e, nil
}

// isConflict recognises every way JetStream reports a lost compare-and-swap.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// maxAttempts bounds Update's rounds: every round lost means another writer
// made progress, so a few are plenty once the losers back off.
const maxAttempts = 10

// backoff waits a random time, growing with the attempt, so writers that
// keep colliding spread out; it ends early with ctx.
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(attempt+1) * int64(time.Millisecond))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Update reads key (the zero T when it holds nothing), lets change decide,
// and writes the result by compare-and-swap; a lost race re-reads and
// decides again. change reports whether to write at all; an error from it
// ends the update unwritten. Update returns the entry as last read or
// written and whether it wrote.
func (s *Store[T]) Update(ctx context.Context, key string, change func(v *T, exists bool) (bool, error)) (Entry[T], bool, error) {
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return Entry[T]{Key: key}, false, err
			}
		}
		e, err := s.Get(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return e, false, err
		}
		write, err := change(&e.Value, exists)
		if err != nil || !write {
			return e, false, err
		}
		e, err = s.Put(ctx, e)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return e, err == nil, err
	}
	return Entry[T]{Key: key}, false, fmt.Errorf("%s: %w %d times in a row", key, ErrConflict, maxAttempts)
}

// List yields every entry whose key matches filter (a NATS subject
// wildcard; "" for all keys). A key deleted meanwhile is skipped.
func (s *Store[T]) List(ctx context.Context, filter string) iter.Seq2[Entry[T], error] {
	return func(yield func(Entry[T], error) bool) {
		if filter == "" {
			filter = ">"
		}
		lister, err := s.kv.ListKeysFiltered(ctx, filter)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return
		}
		if err != nil {
			yield(Entry[T]{}, fmt.Errorf("list %s: %w", filter, err))
			return
		}
		defer func() { _ = lister.Stop() }()
		for key := range lister.Keys() {
			e, err := s.Get(ctx, key)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// Lease is who is working on a value and until when; the zero Lease is
// free. A holder that crashes loses its lease when it runs out, so another
// replica can take the work over.
type Lease struct {
	Holder string    `json:"holder,omitempty"`
	Until  time.Time `json:"leaseUntil,omitzero"`
}

// HeldByOther reports whether someone other than holder holds the lease at
// now.
func (l Lease) HeldByOther(holder string, now time.Time) bool {
	return l.Holder != "" && l.Holder != holder && now.Before(l.Until)
}

// Take gives the lease to holder for d from now.
func (l *Lease) Take(holder string, now time.Time, d time.Duration) {
	l.Holder, l.Until = holder, now.Add(d)
}

// Free lets the lease go.
func (l *Lease) Free() { *l = Lease{} }
