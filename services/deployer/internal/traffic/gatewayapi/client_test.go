package gatewayapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rampartci/rampart/services/deployer/internal/traffic/gatewayapi"
)

// apiServer serves one HTTPRoute over the Kubernetes REST API, as far as
// the router uses it: GET, and merge PATCH with resourceVersion checks. The
// first PATCH is refused with a 409 as if another writer had got there first.
type apiServer struct {
	t      *testing.T
	mu     sync.Mutex
	route  *unstructured.Unstructured
	puts   int
	tokens []string
	params []string
}

const routePath = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/shop"

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, r.Header.Get("Authorization"))
	if r.URL.Path != routePath {
		s.status(w, http.StatusNotFound, "NotFound", "no such path "+r.URL.Path)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.write(w, http.StatusOK, s.route.Object)
	case http.MethodPatch:
		s.puts++
		s.params = append(s.params, r.URL.RawQuery)
		if ct := r.Header.Get("Content-Type"); ct != "application/merge-patch+json" {
			s.status(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", ct)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if s.puts == 1 {
			bumpResourceVersion(s.route) // the other writer
		}
		in, err := applyPatch(s.route, body)
		if err != nil {
			s.status(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		if in.GetResourceVersion() != s.route.GetResourceVersion() {
			s.status(w, http.StatusConflict, "Conflict", `Operation cannot be fulfilled on httproutes.gateway.networking.k8s.io "shop": the object has been modified`)
			return
		}
		bumpResourceVersion(in)
		s.route = in
		s.write(w, http.StatusOK, in.Object)
	default:
		s.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

func (s *apiServer) write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.t.Error(err)
	}
}

func (s *apiServer) status(w http.ResponseWriter, code int, reason, msg string) {
	s.write(w, code, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": msg, "code": code})
}

// The client NewClient builds from a kubeconfig file speaks to a real HTTPS
// API server: the bearer token is sent, the patch names the field
// manager, and a 409 over the wire is retried.
func TestNewClientFromKubeconfig(t *testing.T) {
	api := &apiServer{t: t, route: loadRoute(t, "httproute.yaml")}
	// TLS: clientcmd sends a kubeconfig's credentials only over https.
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: deployer
  user: {token: s3cret}
contexts:
- name: test
  context: {cluster: test, user: deployer}
current-context: test
`, srv.URL, base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	conf := shopConf
	conf.Kubeconfig = kubeconfig
	client, err := gatewayapi.NewClient(conf.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	r, err := gatewayapi.New(conf, client, gatewayapi.Options{Backoff: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeight(context.Background(), 25); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if got := ruleWeights(t, api.route, 0); got["shop-stable"] != 75 || got["shop-canary"] != 25 {
		t.Fatalf("weights on the server: %v", got)
	}
	if api.puts != 2 {
		t.Fatalf("%d PATCHes, want 2 (a conflict, then the retry)", api.puts)
	}
	for _, tok := range api.tokens {
		if tok != "Bearer s3cret" {
			t.Fatalf("Authorization %q in %q", tok, api.tokens)
		}
	}
	if api.params[1] != "fieldManager="+gatewayapi.FieldManager {
		t.Fatalf("PATCH query %q", api.params[1])
	}

	if _, err := gatewayapi.NewClient(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("NewClient with a missing kubeconfig succeeded")
	}
}
