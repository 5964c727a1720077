// Package browsertest starts a real headless Chromium for tests that drive
// pages with chromedp: it finds the browser, starts it with a fresh profile
// and the flags a test machine needs, and stops it when the test ends.
//
// A test without Chromium on the machine skips, unless RAMPART_REQUIRE_CHROMIUM=1
// (set by CI, which installs Debian's chromium) makes it fail instead.
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// RequireEnv names the environment variable that turns a missing Chromium
// from a skip into a failure.
const RequireEnv = "RAMPART_REQUIRE_CHROMIUM"

// PathEnv names an environment variable that may point at the browser.
const PathEnv = "RAMPART_CHROMIUM"

// candidates are the names Chromium goes by, in the order they are tried.
var candidates = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"}

// Find returns the path of the Chromium to use: $RAMPART_CHROMIUM, else the
// first of chromium, chromium-browser, google-chrome on PATH; "" if none.
func Find() string {
	if p := os.Getenv(PathEnv); p != "" {
		return p
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Flags are the browser's command-line flags besides the profile directory:
// headless, no sandbox (CI runs as root in a container), no GPU, none of
// the background traffic (component updates, sync, first-run pages) a test
// must not depend on or wait for, and no throttling of background tabs.
func Flags() []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		// A test drives several tabs at once: none may be throttled for
		// being in the background.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
}

// Options shapes the browser.
type Options struct {
	// Width and Height of the window (default 1280×900).
	Width, Height int
	// TrustCertFiles are PEM server certificates the browser accepts
	// although no CA it knows signed them (a test's own CA): exactly those
	// keys, by their SPKI hash, not any certificate.
	TrustCertFiles []string
}

// Require returns the Chromium to use, or skips the test (fails it with
// RAMPART_REQUIRE_CHROMIUM=1) when there is none. Call it before setting
// up anything expensive.
func Require(t testing.TB) string {
	t.Helper()
	path := Find()
	if path == "" {
		msg := "no Chromium found (chromium, chromium-browser or google-chrome on PATH, or " + PathEnv + "); on Debian: apt-get install -y chromium"
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg + " (" + RequireEnv + "=1)")
		}
		t.Skip(msg)
	}
	return path
}

// spkiHash is the base64 SHA-256 of the public key of the PEM certificate
// in file, as --ignore-certificate-errors-spki-list wants it.
func spkiHash(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// Start starts Chromium with a fresh profile under t.TempDir() and returns
// a chromedp context of its first tab; the browser stops when the test
// ends. It skips the test when no Chromium is found (fails with
// RAMPART_REQUIRE_CHROMIUM=1).
func Start(t testing.TB, opts Options) context.Context {
	t.Helper()
	path := Require(t)
	if opts.Width == 0 || opts.Height == 0 {
		opts.Width, opts.Height = 1280, 900
	}
	flags := append(Flags(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.WindowSize(opts.Width, opts.Height),
	)
	if len(opts.TrustCertFiles) > 0 {
		var hashes []string
		for _, f := range opts.TrustCertFiles {
			h, err := spkiHash(f)
			if err != nil {
				t.Fatalf("trust certificate: %v", err)
			}
			hashes = append(hashes, h)
		}
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(hashes, ",")))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), flags...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The first Run starts the browser; a failure here is the machine's.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
	})
	return ctx
}

// Screenshot saves a full-page PNG of the current page as name (".png" is
// added) in dir (see ArtifactDir), creating dir; it returns the file's path.
func Screenshot(ctx context.Context, dir, name string) (string, error) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", fmt.Errorf("screenshot %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name+".png")
	return path, os.WriteFile(path, png, 0o644)
}

// ArtifactsEnv names the directory where tests keep their screenshots.
const ArtifactsEnv = "RAMPART_TEST_ARTIFACTS"

// ArtifactDir is where a test keeps what it leaves behind for a person to
// look at: $RAMPART_TEST_ARTIFACTS/<test name> when that is set (.ci/run
// sets it), else t.ArtifactDir() (kept with go test -artifacts).
func ArtifactDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv(ArtifactsEnv)
	if base == "" {
		return t.ArtifactDir()
	}
	dir := filepath.Join(base, filepath.FromSlash(t.Name()))
	t.Logf("screenshots in %s", dir)
	return dir
}
