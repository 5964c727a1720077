package kubetest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Main runs the tests of a package that uses Shared and then stops the
// shared server. Use it as TestMain's body: os.Exit(kubetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	return code
}

// Shared is the test binary's server, started by the first test that asks
// (Main stops it). Without the tools the test is skipped with the reason,
// or fails when RAMPART_REQUIRE_KUBE=1.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.srv, shared.err = Start(context.Background(), Options{})
		if shared.err == nil {
			fmt.Fprintf(os.Stderr, "kubetest: etcd and kube-apiserver ready in %v at %s\n", time.Since(start).Round(time.Millisecond), shared.srv.URL)
		}
	})
	if shared.err != nil {
		Skip(t, shared.err)
	}
	return shared.srv
}

// Skip skips t for a missing tool (failing it when RAMPART_REQUIRE_KUBE=1)
// and fails it for any other error.
func Skip(t testing.TB, err error) {
	t.Helper()
	if IsMissing(err) && !Required() {
		t.Skipf("%v (set %s=1 to fail instead)", err, RequireEnv)
	}
	t.Fatal(err)
}

// Clientset is an admin client.
func (s *Server) Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(s.Config())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Namespace creates namespace name with labels and its default
// ServiceAccount (there is no controller-manager to make one); an existing
// namespace is left as it is.
func (s *Server) Namespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	cs := s.Clientset(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if _, err := cs.CoreV1().ServiceAccounts(name).Create(t.Context(), sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default ServiceAccount in %s: %v", name, err)
	}
}

// ServiceAccountToken is a token of ServiceAccount namespace/name from the
// TokenRequest API, valid for an hour.
func (s *Server) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	hour := int64(3600)
	tr, err := s.Clientset(t).CoreV1().ServiceAccounts(namespace).CreateToken(t.Context(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}
