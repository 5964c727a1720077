package promql_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// TestMain fails the package's tests if any goroutine they started is
// still running at the end: servers, analysis loops, consumers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }
