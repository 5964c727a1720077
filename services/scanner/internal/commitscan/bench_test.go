package commitscan

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/services/scanner/sast"
)

// BenchmarkSAST measures what the Go SAST adds to a commit scan of a real
// repository, Rampart's own tree (a clone of this checkout at HEAD): each
// round scans the same commit with the scanner as deployed (Trivy with its
// misconfiguration checks, secrets) without SAST, then with it, and the
// ratio is reported against that baseline. One scan with SAST runs before
// the timer: its loading compiles the export data of every dependency into
// the go build cache (reported as cold-sast-s), which later scans reuse.
func BenchmarkSAST(b *testing.B) {
	git, err := exec.LookPath("git")
	if err != nil {
		b.Skip("needs git to clone the tree")
	}
	top, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		b.Skipf("not in a git checkout: %v", err)
	}
	clone := filepath.Join(b.TempDir(), "rampart")
	if out, err := exec.Command(git, "clone", "-q", "--no-hardlinks", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		b.Fatalf("clone: %v: %s", err, out)
	}
	head, err := exec.Command(git, "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		b.Fatal(err)
	}
	c := events.Commit{Repository: "github.com/rampartci/rampart", RepoURL: "file://" + clone, SHA: strings.TrimSpace(string(head))}

	// The first load of this tree compiles the export data of Trivy, the
	// Kubernetes client and the rest: minutes on a small machine, past the
	// default bounds. (`make bench` gives the test binary an hour.)
	base := newTestScanner(b, ScannerOptions{DisableSAST: true, Timeout: time.Hour})
	withSAST := newTestScanner(b, ScannerOptions{Timeout: time.Hour, SAST: sast.Options{Timeout: 50 * time.Minute}})
	if withSAST.sast == nil {
		b.Skipf("no go command: %s", withSAST.sastOff)
	}
	scan := func(s *Scanner) (Result, time.Duration) {
		start := time.Now()
		res, err := s.ScanCommit(b.Context(), c)
		if err != nil {
			b.Fatal(err)
		}
		return res, time.Since(start)
	}
	res, cold := scan(withSAST)
	b.Logf("%s; %d SAST findings, cold scan %s", strings.Join(res.Notes, "; "), len(res.SAST.Findings), cold)
	b.ResetTimer()
	var baseT, sastT []float64
	for b.Loop() {
		_, d0 := scan(base)
		_, d1 := scan(withSAST)
		baseT, sastT = append(baseT, d0.Seconds()), append(sastT, d1.Seconds())
	}
	b.StopTimer()
	ratios := make([]float64, len(baseT))
	for i := range baseT {
		ratios[i] = sastT[i] / baseT[i]
	}
	b.ReportMetric(median(baseT), "base-s")
	b.ReportMetric(median(sastT), "sast-s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(cold.Seconds(), "cold-sast-s")
	b.ReportMetric(0, "ns/op") // a round is two scans; the metrics above are per scan
	if os.Getenv("RAMPART_BENCH_VERBOSE") != "" {
		b.Logf("base %v\nsast %v", baseT, sastT)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
