package compliance_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
)

// chromium starts a headless Chromium (Debian's `chromium`) with a fresh
// profile and returns a chromedp context on one tab. Without Chromium the
// test is skipped, unless RAMPART_REQUIRE_CHROMIUM=1 (CI) says it must run.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("RAMPART_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("chromium is not on PATH and RAMPART_REQUIRE_CHROMIUM=1 (apt-get install -y chromium)")
		}
		t.Skip("chromium is not on PATH (apt-get install -y chromium); set RAMPART_REQUIRE_CHROMIUM=1 to fail instead")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 900))
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// TestHTMLReportInChromium opens the HTML report in a real headless
// Chromium and checks what a person sees: the blocked commit, the
// rolled-back release with its trigger and page, the blocked release with
// its CVE. The screenshot and the printed PDF are kept as test artifacts
// (go test -artifacts keeps them; otherwise they go with the test's
// temporary directory).
func TestHTMLReportInChromium(t *testing.T) {
	ctx := chromium(t)
	f := startLedger(t, scenario(t))
	r, _ := build(t, f, f.client)
	dir := t.ArtifactDir()
	page := filepath.Join(dir, "compliance-report.html")
	var html bytes.Buffer
	if err := compliance.WriteHTML(&html, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate("file://"+page), chromedp.WaitVisible("#change-c-v2")); err != nil {
		t.Fatal(err)
	}
	section := func(id string) string {
		t.Helper()
		text, err := chromedp.Run(tctx, chromedp.Text("#"+id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return text
	}
	checks := map[string][]string{
		"change-c-commit": {"commit 9fceb02d0ae5 to git.example/shop-config", "blocked at source scan", "aws-access-key-id", "dev@example.com"},
		"change-c-v2": {"shop v2", "rolled back", "Rolled back at entry", "Trigger: http-5xx-ratio observed 0.1 > threshold 0.02",
			"On-call paged", "https://pagerduty.example/incidents/PDV2", "did not pass"},
		"change-c-v3":    {"shop v3", "blocked at image scan", "CVE-2024-9143", "libcrypto3", "fixed in 3.3.2-r1"},
		"change-c-v1":    {"shop v1", "released", "passed", "WAIVED CVE-2025-46394 in busybox: owner alice@example.com, expires 2026-12-31"},
		"control-cc8-1":  {"SOC 2 CC8.1", "evidenced"},
		"control-a-8-32": {"ISO/IEC 27001:2022 A.8.32"},
	}
	for id, wants := range checks {
		text := section(id)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("#%s does not show %q:\n%s", id, want, text)
			}
		}
	}
	// Nothing off the page: every resource is the document itself.
	n, err := chromedp.Run(tctx, chromedp.Evaluate[int](`performance.getEntriesByType("resource").length`))
	if err != nil || n != 0 {
		t.Errorf("the page loaded %d resources (%v), want none", n, err)
	}

	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := chromedp.Run(tctx, chromedp.PrintToPDF())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("printing gave %d bytes that are not a PDF", len(pdf))
	}
	for name, b := range map[string][]byte{"compliance-report.png": png, "compliance-report.pdf": pdf} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot, PDF and page in %s", dir)
}
