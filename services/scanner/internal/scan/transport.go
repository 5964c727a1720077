package scan

import (
	"context"
	"io"
	"net/http"
	"sync"

	xhttp "github.com/aquasecurity/trivy/pkg/x/http"
)

// ctxTransport is a Trivy transport (installed with xhttp.WithTransport)
// whose round trippers also bind every request to the scan's context.
// go-containerregistry, as Trivy calls it, builds its requests from
// context.Background(), so without this a registry that accepts a
// connection and never answers would hold a scan forever.
type ctxTransport struct {
	ctx  context.Context
	base xhttp.Transport
}

var _ xhttp.Transport = ctxTransport{}

func (t ctxTransport) Build(opts ...xhttp.TransportOption) http.RoundTripper {
	return ctxRoundTripper{ctx: t.ctx, next: t.base.Build(opts...)}
}

type ctxRoundTripper struct {
	ctx  context.Context
	next http.RoundTripper
}

// RoundTrip sends req under a context cancelled when either the request's
// own context or the scan's is done; it stays live until the response body
// is closed.
func (rt ctxRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	stop := context.AfterFunc(rt.ctx, func() { cancel(context.Cause(rt.ctx)) })
	release := func() {
		stop()
		cancel(nil)
	}
	resp, err := rt.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releaseOnClose{ReadCloser: resp.Body, release: sync.OnceFunc(release)}
	return resp, nil
}

type releaseOnClose struct {
	io.ReadCloser
	release func()
}

func (r *releaseOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}
