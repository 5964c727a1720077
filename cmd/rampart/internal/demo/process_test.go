package demo

import (
	"bytes"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// runTool runs bin with args for the rest of the test, stopped by SIGTERM
// at cleanup (its output logged if the test failed), and returns once
// ready passes, failing the test if the tool exits first or ready never
// passes within a minute.
func runTool(t *testing.T, bin string, args []string, ready func() error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, out.String())
		}
	})
	natstest.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("%s exited: %v\n%s", bin, err, out.String())
		default:
		}
		return ready()
	})
}
