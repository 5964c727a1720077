package kubetest

import "syscall"

// procAttr kills the tools when the test binary dies without stopping them.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
