package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Role is what a console session may do: the operator API's roles.
type Role int

// The roles, weakest first.
const (
	RoleNone Role = iota
	RoleViewer
	RoleOperator
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	}
	return "none"
}

// CookieName is the session cookie.
const CookieName = "rampart_console"

// sessionLife is how long a login lasts.
const sessionLife = 12 * time.Hour

// Tokens are the operator API's tokens; a browser logs in with one of them.
type Tokens struct {
	Viewer, Operator string
}

// roleOf is the role token grants, compared in constant time.
func (t Tokens) roleOf(token string) Role {
	eq := func(want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
	}
	switch {
	case eq(t.Operator):
		return RoleOperator
	case eq(t.Viewer):
		return RoleViewer
	}
	return RoleNone
}

func (t Tokens) token(r Role) string {
	switch r {
	case RoleOperator:
		return t.Operator
	case RoleViewer:
		return t.Viewer
	}
	return ""
}

// A session cookie is "<role>.<expiry unix>.<mac>": the MAC is HMAC-SHA256
// keyed by a hash of the role's token, so the deployer keeps no session
// state (any replica with the same tokens accepts it), a cookie cannot be
// raised to another role, and changing a token ends its sessions.
func (t Tokens) mac(r Role, expiry int64) []byte {
	key := sha256.Sum256([]byte("rampart-console-session\x00" + t.token(r)))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(r.String() + "." + strconv.FormatInt(expiry, 10)))
	return m.Sum(nil)
}

func (t Tokens) cookieValue(r Role, expiry time.Time) string {
	e := expiry.Unix()
	return r.String() + "." + strconv.FormatInt(e, 10) + "." + base64.RawURLEncoding.EncodeToString(t.mac(r, e))
}

// session is the role r's session cookie grants now, or RoleNone.
func (t Tokens) session(r *http.Request, now time.Time) Role {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return RoleNone
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return RoleNone
	}
	var role Role
	switch parts[0] {
	case "operator":
		role = RoleOperator
	case "viewer":
		role = RoleViewer
	default:
		return RoleNone
	}
	if t.token(role) == "" {
		return RoleNone
	}
	expiry, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || now.Unix() >= expiry || expiry > now.Add(sessionLife).Unix() {
		return RoleNone
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(mac, t.mac(role, expiry)) {
		return RoleNone
	}
	return role
}

func setSession(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: value, Path: Path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// sameOrigin reports whether a state-changing request comes from the
// console's own pages. Browsers send Origin on every POST and
// Sec-Fetch-Site where they support it; a request with neither is not a
// browser's (curl, the CLI) and carries no ambient cookie risk.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host && (u.Scheme == "https") == (r.TLS != nil)
}

// localNext is next when it is a console page, else the rollouts page: a
// login never redirects elsewhere.
func localNext(next string) string {
	if !strings.HasPrefix(next, Path) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Path + "rollouts"
	}
	return next
}
