package scan

import (
	"context"
	"log/slog"
	"sync"

	trivylog "github.com/aquasecurity/trivy/pkg/log"
)

var routeOnce sync.Once

// routeTrivyLogs sends Trivy's logs to logger.
//
// Trivy logs through slog.Default(), and its pkg/log init() installs a
// handler that buffers every record in memory until a CLI sets the real
// logger. That handler is not safe for concurrent use (the race detector
// flags Trivy's parallel layer analysis logging through it), and a
// long-running service that never replaces it would grow without bound, so
// the first Scanner replaces that buffering handler, once per process, with
// logger tagged component=trivy, Trivy's per-scan Info chatter demoted to
// Debug. A default logger the application installed itself is left alone.
func routeTrivyLogs(logger *slog.Logger) {
	routeOnce.Do(func() {
		deferred, ok := slog.Default().Handler().(*trivylog.DeferredHandler)
		if !ok {
			return
		}
		h := demoteInfo{logger.With("component", "trivy").Handler()}
		deferred.Flush(h)
		slog.SetDefault(slog.New(h))
	})
}

// demoteInfo logs Info records at Debug; Warn and Error pass unchanged.
type demoteInfo struct{ slog.Handler }

func (d demoteInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return d.Handler.Enabled(ctx, demote(l))
}

func (d demoteInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.Handler.Handle(ctx, r)
}

func (d demoteInfo) WithAttrs(attrs []slog.Attr) slog.Handler {
	return demoteInfo{d.Handler.WithAttrs(attrs)}
}

func (d demoteInfo) WithGroup(name string) slog.Handler {
	return demoteInfo{d.Handler.WithGroup(name)}
}

func demote(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}
