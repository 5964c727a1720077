package ledger

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions...) }
