package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/browsertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The browser loads a page, runs its script and takes a screenshot.
func TestStartLoadsAPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>t</title><p id=out>waiting</p><script>document.getElementById("out").textContent = "ran"</script>`)
	}))
	defer srv.Close()
	ctx := browsertest.Start(t, browsertest.Options{Width: 400, Height: 300})
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#out")))
	if err != nil {
		t.Fatal(err)
	}
	if text != "ran" {
		t.Errorf("text %q, want the script's %q", text, "ran")
	}
	path, err := browsertest.Screenshot(ctx, browsertest.ArtifactDir(t), "page")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("screenshot %s: %v", path, err)
	}
}
