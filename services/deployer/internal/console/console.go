// Package console is Rampart's web console, served by the deployer under
// /console/: live rollouts per application with pause, resume, promote and
// abort; a release's story from the ledger; scan verdicts; rollback reports;
// the ledger's status with "verify now".
//
// Pages are html/template rendered on the server; one small embedded script
// follows the rollouts over server-sent events and posts actions as JSON.
// Nothing is fetched from elsewhere at run time. The rollouts come from the
// deployer itself; the ledger and the notifier are read through their HTTP
// APIs only (pkg/ledger/client, GET /notifier/reports/{rollout}).
//
// A browser logs in with the operator API's viewer or operator token once;
// it gets a stateless, HttpOnly, SameSite=Strict session cookie (see
// docs/decisions/0026-web-console.md).
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Path is where the console lives on the deployer's HTTP server.
const Path = "/console/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Rollouts is what the console reads and acts on: the deployer's rollouts.
type Rollouts interface {
	List(ctx context.Context) ([]adminapi.Rollout, error)
	Rollout(ctx context.Context, id string) (adminapi.Rollout, error)
	Act(ctx context.Context, id string, action adminapi.Action, reason string, by adminapi.Actor) (adminapi.Rollout, error)
}

// Options configures the console.
type Options struct {
	Tokens   Tokens
	Rollouts Rollouts
	Policy   *policy.Store
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the pages.
type Console struct {
	opts     Options
	pages    map[string]*template.Template
	hub      *hub
	ledger   atomic.Pointer[ledgerConn]
	notifier atomic.Pointer[notifierConn]
	stopping <-chan struct{}
	follow   <-chan struct{}

	mu       sync.Mutex
	verified *verification // the last "verify now"
}

type ledgerConn struct {
	c       *client.Client
	keyFile string
}

type notifierConn struct {
	base string
	hc   *http.Client
}

// New prepares the console; Follow starts its live updates.
func New(opts Options) (*Console, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{opts: opts, hub: newHub(), pages: map[string]*template.Template{}}
	for _, page := range []string{"login", "rollouts", "release", "scans", "report", "ledger"} {
		t, err := template.New("layout.html").Funcs(funcs(opts.Now)).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", page, err)
		}
		c.pages[page] = t
	}
	return c, nil
}

// UseLedger reads the ledger through c; keyFile holds the ledger's public
// key (ledger.key.pub), the trusted key "verify now" checks against.
func (c *Console) UseLedger(lc *client.Client, keyFile string) {
	c.ledger.Store(&ledgerConn{c: lc, keyFile: keyFile})
}

// UseNotifier reads rollback reports from the notifier at base.
func (c *Console) UseNotifier(base string, hc *http.Client) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("console: notifier %q is not an http(s) URL", base)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c.notifier.Store(&notifierConn{base: u.String(), hc: hc})
	return nil
}

// Follow starts following the rollouts in kv until ctx ends; stopping,
// closed when the HTTP server stops, ends the live streams.
func (c *Console) Follow(ctx context.Context, kv jetstream.KeyValue, stopping <-chan struct{}) error {
	c.stopping = stopping
	done, err := c.hub.follow(ctx, kv, c.opts.Logger.Warn)
	if err != nil {
		return fmt.Errorf("console: follow rollouts: %w", err)
	}
	c.follow = done
	return nil
}

// Wait returns once the goroutine Follow started has ended.
func (c *Console) Wait() {
	if c.follow != nil {
		<-c.follow
	}
}

// Routes registers the console under Path.
func (c *Console) Routes(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+Path+"static/", http.StripPrefix(Path+"static/", securityHeaders(http.FileServerFS(static))))
	mux.HandleFunc("GET "+Path+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Path+"rollouts", http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+Path+"login", c.loginPage)
	mux.HandleFunc("POST "+Path+"login", c.login)
	mux.HandleFunc("POST "+Path+"logout", c.logout)
	mux.HandleFunc("GET "+Path+"rollouts", c.page(RoleViewer, c.rolloutsPage))
	mux.HandleFunc("GET "+Path+"events", c.page(RoleViewer, c.events))
	mux.HandleFunc("POST "+Path+"rollouts/{id}/{action}", c.action(RoleOperator, c.act))
	mux.HandleFunc("GET "+Path+"releases/{chain}", c.page(RoleViewer, c.releasePage))
	mux.HandleFunc("GET "+Path+"scans", c.page(RoleViewer, c.scansPage))
	mux.HandleFunc("GET "+Path+"reports/{rollout}", c.page(RoleViewer, c.reportPage))
	mux.HandleFunc("GET "+Path+"ledger", c.page(RoleViewer, c.ledgerPage))
	mux.HandleFunc("POST "+Path+"ledger/verify", c.action(RoleViewer, c.verifyNow))
}

// securityHeaders keeps the pages to their own origin: no inline script,
// no framing, nothing cached.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin") // no-referrer would make browsers send Origin: null
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

type handler func(w http.ResponseWriter, r *http.Request, role Role)

// page serves a page to a session of at least role need; a browser without
// one is sent to the login page.
func (c *Console) page(need Role, h handler) http.HandlerFunc {
	return securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := c.opts.Tokens.session(r, c.opts.Now())
		if role == RoleNone {
			http.Redirect(w, r, Path+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if role < need {
			c.render(w, http.StatusForbidden, "login", pageData{Title: "Forbidden", Error: "this page needs the " + need.String() + " token"})
			return
		}
		h(w, r, role)
	})).ServeHTTP
}

// action serves a JSON action. It is safe against cross-site requests:
// the body must be application/json (a cross-origin page cannot send that
// without a CORS preflight, which the console never answers), the request
// must come from the console's origin, and the cookie is SameSite=Strict.
func (c *Console) action(need Role, h handler) http.HandlerFunc {
	return securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt := webhook.MediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q, want application/json", mt))
			return
		}
		if !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		switch role := c.opts.Tokens.session(r, c.opts.Now()); {
		case role == RoleNone:
			writeError(w, http.StatusUnauthorized, "log in to the console first")
		case role < need:
			writeError(w, http.StatusForbidden, adminapi.ErrForbidden.Error())
		default:
			h(w, r, role)
		}
	})).ServeHTTP
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	Nav   string // the navigation entry of the page
	Role  Role
	Error string
	Data  any
}

func (c *Console) render(w http.ResponseWriter, code int, page string, d pageData) {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout.html", d); err != nil {
		c.opts.Logger.Error("console: render", "page", page, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one named template of page.
func (c *Console) fragment(page, name string, data any) (string, error) {
	var buf bytes.Buffer
	err := c.pages[page].ExecuteTemplate(&buf, name, data)
	return buf.String(), err
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.render(w, http.StatusOK, "login", pageData{Title: "Log in", Data: localNext(r.URL.Query().Get("next"))})
	})).ServeHTTP(w, r)
}

// maxForm bounds the login form.
const maxForm = 8 << 10

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			http.Error(w, "cross-origin login refused", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			c.render(w, http.StatusBadRequest, "login", pageData{Title: "Log in", Error: "unreadable form: " + err.Error(), Data: Path + "rollouts"})
			return
		}
		next := localNext(r.PostForm.Get("next"))
		role := c.opts.Tokens.roleOf(r.PostForm.Get("token"))
		if role == RoleNone {
			c.render(w, http.StatusUnauthorized, "login", pageData{Title: "Log in", Error: "that is neither the viewer's nor the operator's token", Data: next})
			return
		}
		setSession(w, r, c.opts.Tokens.cookieValue(role, c.opts.Now().Add(sessionLife)), int(sessionLife/time.Second))
		http.Redirect(w, r, next, http.StatusSeeOther)
	})).ServeHTTP(w, r)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin logout refused", http.StatusForbidden)
		return
	}
	setSession(w, r, "", -1)
	http.Redirect(w, r, Path+"login", http.StatusSeeOther)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, adminapi.Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// errNotConnected: the console was not told where a service is.
var errNotConnected = errors.New("not configured")
