package compliance_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/pkg/runtime/browsertest"
)

// TestHTMLReportInChromium opens the HTML report in a real headless
// Chromium and checks what a person sees: the blocked commit, the
// rolled-back release with its trigger and page, the blocked release with
// its CVE. The screenshot and the printed PDF are kept as test artifacts
// (browsertest.ArtifactDir).
func TestHTMLReportInChromium(t *testing.T) {
	ctx := browsertest.Start(t, browsertest.Options{Width: 1200, Height: 900})
	f := startLedger(t, scenario(t))
	r, _ := build(t, f, f.client)
	dir := browsertest.ArtifactDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
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

	if _, err := browsertest.Screenshot(tctx, dir, "compliance-report"); err != nil {
		t.Fatal(err)
	}
	pdf, err := chromedp.Run(tctx, chromedp.PrintToPDF())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("printing gave %d bytes that are not a PDF", len(pdf))
	}
	if err := os.WriteFile(filepath.Join(dir, "compliance-report.pdf"), pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot, PDF and page in %s", dir)
}
