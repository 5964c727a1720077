package commitscan

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/natstest"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
)

// Test credentials: shaped like real ones, never issued, and free of the
// word "example" (which Trivy's allow rules exempt).
const (
	awsKeyID     = "AKIAQ3EGRTZ7K5N2WXYB"
	awsSecretKey = "Jx9p2Lq7Vw4Rt8Yb3Nm6Kc1Hd5Fg0Sz2Ae7Ui9Oo"
)

// The DB is process-global (one open per process), so every test in this
// package shares one fixture DB, built on first use.
var testDB struct {
	once sync.Once
	db   *vulndb.DB
	err  error
	dir  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testDB.db != nil {
		_ = testDB.db.Close()
	}
	if testDB.dir != "" {
		_ = os.RemoveAll(testDB.dir)
	}
	if code == 0 {
		if err := goleak.Find(natstest.LeakOptions...); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func fixtureDB(t testing.TB) *vulndb.DB {
	t.Helper()
	testDB.once.Do(func() {
		dir, err := os.MkdirTemp("", "rampart-source-db-*")
		if err != nil {
			testDB.err = err
			return
		}
		testDB.dir = dir
		if err := vulndb.Build(dir, time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), vulndb.Fixtures(), os.DirFS("testdata/advisories")); err != nil {
			testDB.err = err
			return
		}
		testDB.db, testDB.err = vulndb.Open(dir, nil)
	})
	if testDB.err != nil {
		t.Fatal(testDB.err)
	}
	return testDB.db
}

func newTestScanner(t testing.TB, opts ScannerOptions) *Scanner {
	t.Helper()
	opts.DB = fixtureDB(t)
	opts.AllowLocal = true
	s, err := NewScanner(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// repo is a git repository on disk, built with go-git, cloned over file://.
type repo struct {
	t   testing.TB
	dir string
	r   *git.Repository
}

func newRepo(t testing.TB) *repo {
	t.Helper()
	dir := t.TempDir()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &repo{t: t, dir: dir, r: r}
}

// URL is the repository's file:// URL.
func (r *repo) URL() string { return "file://" + filepath.ToSlash(r.dir) }

// commit writes files (path -> content; "" deletes) and commits them on the
// current branch, returning the commit hash.
func (r *repo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	wt, err := r.r.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(r.dir, filepath.FromSlash(p))
		if content == "" {
			if _, err := wt.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
		if _, err := wt.Add(p); err != nil {
			r.t.Fatal(err)
		}
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "dev", Email: "dev@acme.test", When: time.Unix(1_780_000_000, 0)}, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

// pullRef points refs/pull/<n>/head at sha and moves the branch back to
// base, so sha is reachable only through the pull request's ref.
func (r *repo) pullRef(n int, sha, base string) string {
	r.t.Helper()
	ref := fmt.Sprintf("refs/pull/%d/head", n)
	if err := r.r.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(ref), plumbing.NewHash(sha))); err != nil {
		r.t.Fatal(err)
	}
	head, err := r.r.Head()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.r.Storer.SetReference(plumbing.NewHashReference(head.Name(), plumbing.NewHash(base))); err != nil {
		r.t.Fatal(err)
	}
	return ref
}

func (r *repo) event(sha string) events.Commit {
	return events.Commit{Repository: "github.com/acme/shop", RepoURL: r.URL(), SHA: sha, Ref: "refs/heads/master"}
}
