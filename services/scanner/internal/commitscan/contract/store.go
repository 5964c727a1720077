package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream object store holding the live spec of each
// repository. An object store, not a KV bucket: specs of large APIs pass
// the 1 MB message limit a KV value is held to.
const Bucket = "RAMPART_API_SPECS"

// Store keeps the live release's spec of each repository.
type Store interface {
	// Live returns the spec of the repository's live release; found is false
	// when none is stored (the first scan, or no spec yet).
	Live(ctx context.Context, repository string) (s Spec, found bool, err error)
	// SetLive records s as the repository's live spec.
	SetLive(ctx context.Context, s Spec) error
}

// ObjectStore is a Store on a JetStream object store, one object per
// repository (named by the repository) with the commit and path as headers.
type ObjectStore struct{ obj jetstream.ObjectStore }

var _ Store = (*ObjectStore)(nil)

// Headers carried on each stored spec.
const (
	headerSHA  = "Rampart-Commit"
	headerPath = "Rampart-Spec-Path"
)

// OpenObjectStore creates the bucket if needed and returns a Store on it.
func OpenObjectStore(ctx context.Context, js jetstream.JetStream, replicas int) (*ObjectStore, error) {
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      Bucket,
		Description: "OpenAPI spec of each repository's live release, for contract diffs",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure object store %s: %w", Bucket, err)
	}
	return &ObjectStore{obj: obj}, nil
}

// Live implements Store.
func (s *ObjectStore) Live(ctx context.Context, repository string) (Spec, bool, error) {
	res, err := s.obj.Get(ctx, repository)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Spec{}, false, nil
	}
	if err != nil {
		return Spec{}, false, fmt.Errorf("read live spec of %s: %w", repository, err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return Spec{}, false, fmt.Errorf("read live spec of %s: %w", repository, err)
	}
	data, err := io.ReadAll(io.LimitReader(res, MaxSpecSize+1))
	if err != nil {
		return Spec{}, false, fmt.Errorf("read live spec of %s: %w", repository, err)
	}
	return Spec{Repository: repository, SHA: info.Headers.Get(headerSHA), Path: info.Headers.Get(headerPath), Data: data}, true, nil
}

// SetLive implements Store.
func (s *ObjectStore) SetLive(ctx context.Context, spec Spec) error {
	meta := jetstream.ObjectMeta{Name: spec.Repository, Headers: map[string][]string{
		headerSHA:  {spec.SHA},
		headerPath: {spec.Path},
	}}
	if _, err := s.obj.Put(ctx, meta, bytes.NewReader(spec.Data)); err != nil {
		return fmt.Errorf("store live spec of %s@%s: %w", spec.Repository, short(spec.SHA), err)
	}
	return nil
}
