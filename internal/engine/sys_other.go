//go:build !linux

package engine

import (
	"runtime"
	"syscall"
	"time"
)

// nanosleep sleeps about d.
func nanosleep(d time.Duration) { time.Sleep(d) }

// bindNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not exist.
func bindNoPort(network, address string, c syscall.RawConn) error { return nil }

// CPUs is GOMAXPROCS; there are no event loops here.
func CPUs() int { return runtime.GOMAXPROCS(0) }

// spreadLoopback is false: elsewhere only 127.0.0.1 may be configured.
const spreadLoopback = false
