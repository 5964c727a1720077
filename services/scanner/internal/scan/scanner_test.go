package scan_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	trivylog "github.com/aquasecurity/trivy/pkg/log"

	"github.com/rampartci/rampart/services/scanner/internal/scan"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
)

func TestConcurrentScans(t *testing.T) {
	s := newScanner(t, env.opts)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			img, wantCritical := env.vulnerable, 2
			if i%2 == 1 {
				img, wantCritical = env.clean, 0
			}
			res, err := s.ScanImage(context.Background(), img.Ref())
			if err != nil {
				errs <- err
				return
			}
			if res.Counts.Critical != wantCritical || res.Digest != img.Digest {
				errs <- errors.New("wrong result for " + img.Ref())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestScanCanceledContext(t *testing.T) {
	s := newScanner(t, env.opts)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.ScanImage(ctx, env.vulnerable.Ref())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestHungRegistryTimesOut(t *testing.T) {
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // accept the connection, never answer
	}))
	defer hung.Close()
	opts := env.opts
	opts.Timeout = 300 * time.Millisecond
	s := newScanner(t, opts)
	start := time.Now()
	_, err := s.ScanImage(context.Background(), strings.TrimPrefix(hung.URL, "http://")+"/team/app@"+env.vulnerable.Digest)
	if !errors.Is(err, scan.ErrPull) {
		t.Errorf("err = %v, want ErrPull", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("scan of a hung registry took %v", elapsed)
	}
}

func TestReloadDoesNotWaitForAPull(t *testing.T) {
	reached := make(chan struct{}, 1)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case reached <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer hung.Close()
	s := newScanner(t, env.opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.ScanImage(ctx, strings.TrimPrefix(hung.URL, "http://")+"/team/app@"+env.vulnerable.Digest)
		done <- err
	}()
	<-reached // the scan is now waiting on the registry

	start := time.Now()
	if _, _, err := env.db.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Reload waited %v for a scan that was still pulling", elapsed)
	}
	cancel() // the caller gives up: the scan returns promptly with the context's error
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan of the hung registry: err = %v, want context.Canceled", err)
	}
}

func TestClosingASecondDBReferenceKeepsScanning(t *testing.T) {
	// A second reference to the shared DB, closed: the shared one stays open.
	db, err := vulndb.Open(env.cacheDir, nil)
	if err != nil {
		t.Fatalf("reopen the shared DB: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := newScanner(t, env.opts).ScanImage(context.Background(), env.clean.Ref()); err != nil {
		t.Errorf("scan after closing a second reference: %v", err)
	}
}

func TestTrivyLogsAreRouted(t *testing.T) {
	newScanner(t, env.opts)
	if _, buffering := slog.Default().Handler().(*trivylog.DeferredHandler); buffering {
		t.Error("Trivy's buffering default logger is still installed after scan.New")
	}
}

func TestCacheKey(t *testing.T) {
	key := scan.CacheKey(imagetestDigest, env.db.Version())
	if !regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`).MatchString(key) {
		t.Errorf("CacheKey %q is not a valid NATS KV key", key)
	}
	other := env.db.Version()
	other.Digest = "ffff" + other.Digest[4:]
	if scan.CacheKey(imagetestDigest, other) == key {
		t.Error("a different DB gave the same cache key")
	}
}

const imagetestDigest = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
