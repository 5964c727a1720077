package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartci/rampart/pkg/runtime/browsertest"
)

// The web console in a real browser against a running mesh: a canary
// appears on the rollouts page without a reload, its step changes as the
// deployer steps it, an operator aborts it from the page, and a second
// page (a narrow screen) sees the weight go to 0 within a second.
func TestConsoleFollowsACanaryAndAbortsIt(t *testing.T) {
	browsertest.Require(t) // before the mesh: skip early without Chromium
	e := startEnv(t, 3*time.Second, 0)
	browser := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 1000,
		TrustCertFiles: []string{filepath.Join(e.Mesh.TLSDir, "server.crt")}})
	artifacts := browsertest.ArtifactDir(t)
	shot := func(ctx context.Context, name string) {
		t.Helper()
		path, err := browsertest.Screenshot(ctx, artifacts, name)
		if err != nil {
			t.Error(err)
			return
		}
		t.Logf("screenshot %s", path)
	}
	raw, err := os.ReadFile(filepath.Join(e.dataDir, "deployer", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	base := e.Mesh.HTTPURL() + "/console/"

	// v1 becomes the stable release, quickly, through the operator API.
	v1 := e.release(t, "v1", 0)
	if err := e.PromoteThrough(t.Context(), v1, 4, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// Log in: the rollouts page sends a browser without a session to the
	// login form, which returns it to the page.
	login := func(ctx context.Context) {
		t.Helper()
		run(t, ctx, "log in",
			chromedp.Navigate(base+"rollouts"),
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), token),
			chromedp.Submit(chromedp.CSS("#token")),
			chromedp.WaitVisible(chromedp.CSS(`#live[data-state="live"]`)),
		)
	}
	login(browser)
	// A second browser, as narrow as a phone, follows the same page.
	phone := browsertest.Start(t, browsertest.Options{Width: 390, Height: 844,
		TrustCertFiles: []string{filepath.Join(e.Mesh.TLSDir, "server.crt")}})
	login(phone)

	// v2's canary starts: its card appears at 5% without a reload, then the
	// deployer takes the next step after the pause.
	v2 := e.release(t, "v2", 0)
	card := fmt.Sprintf(`document.getElementById(%q)`, "rollout-"+v2.RolloutID)
	poll(t, browser, "v2's canary at 5%", card+`?.dataset.weight === "5" && `+card+`.dataset.phase === "progressing"`, 10*time.Second)
	poll(t, browser, "v2's second step (25%)", card+`?.dataset.step === "1" && `+card+`.dataset.weight === "25"`, 15*time.Second)
	shot(browser, "rollouts-canary")
	text := runValue(t, browser, "read the card", chromedp.Text(chromedp.CSS("#rollout-"+v2.RolloutID)))
	for _, want := range []string{"v2", "progressing", "2 of 4", "http-5xx-ratio", "≤ 1.00%"} {
		if !strings.Contains(text, want) {
			t.Errorf("the card does not say %q:\n%s", want, text)
		}
	}

	// Abort from the page.
	sel := "#rollout-" + v2.RolloutID
	run(t, browser, "abort",
		chromedp.SendKeys(chromedp.CSS(sel+" input[name=reason]"), "aborted from the console test"),
		chromedp.Click(chromedp.CSS(sel+" button.action-abort")),
	)
	poll(t, browser, "the rollback on the page that aborted", card+`?.dataset.phase === "rolledback" && `+card+`.dataset.weight === "0"`, 10*time.Second)
	answered := time.Now()
	if w, _ := e.Mesh.Deployer.Weight(App); w != 0 {
		t.Errorf("router weight %d%% after the abort, want 0", w)
	}
	// The other page learns it from the live stream.
	poll(t, phone, "the rollback on the other page", card+`?.dataset.weight === "0" && `+card+`.dataset.phase === "rolledback"`, time.Second)
	t.Logf("the other page showed weight 0 %s after the aborting page did", time.Since(answered).Round(time.Millisecond))
	shot(browser, "rollouts-rolledback")
	shot(phone, "rollouts-rolledback-narrow")
	text = runValue(t, browser, "read the card", chromedp.Text(chromedp.CSS(sel)))
	for _, want := range []string{"rolledback", "aborted from the console test", "Rollback report"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rolled-back card does not say %q:\n%s", want, text)
		}
	}
	// The card links to the release's story, read from the ledger.
	run(t, browser, "open the release story",
		chromedp.Click(chromedp.CSS(sel+` a[href^="/console/releases/"]`)),
		chromedp.WaitVisible(chromedp.CSS("ol.timeline li")),
	)
	story := runValue(t, browser, "read the story", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"scan", "promote", "canarystep"} {
		if !strings.Contains(story, want) {
			t.Errorf("the release story does not show a %q event:\n%s", want, story)
		}
	}
	shot(browser, "release-story")

	// The rollback report, from the notifier (written just after the page).
	if err := waitUntil(t.Context(), 20*time.Second, "the rollback report", func() bool {
		_, err := os.Stat(filepath.Join(e.dataDir, "reports", v2.RolloutID+".md"))
		return err == nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, browser, "open the rollback report", chromedp.Navigate(base+"reports/"+v2.RolloutID), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
	report := runValue(t, browser, "read the report", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"operator", "canary at 25%", "From", "v2"} {
		if !strings.Contains(report, want) {
			t.Errorf("the rollback report does not say %q:\n%s", want, report)
		}
	}
	// Scan verdicts, from the ledger.
	run(t, browser, "open the scans", chromedp.Navigate(base+"scans"), chromedp.WaitVisible(chromedp.CSS("article.scan")))
	if scans := runValue(t, browser, "read the scans", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(scans, "pass") {
		t.Errorf("the scans page shows no passing verdict:\n%s", scans)
	}
	// The ledger's status, and "verify now" against the trusted key.
	run(t, browser, "verify the ledger",
		chromedp.Navigate(base+"ledger"),
		chromedp.WaitVisible(chromedp.CSS("form.verify button")),
		chromedp.Click(chromedp.CSS("form.verify button")),
	)
	poll(t, browser, "the verification", `document.querySelector(".verification .good") !== null`, 20*time.Second)
	shot(browser, "ledger")
}

func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
}

// pageState says where the page is and what it shows, for a failure.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	return state
}

func runValue[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// poll waits until the page's expression is true.
func poll(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v\n%s", what, timeout, err, pageState(ctx))
	}
}
