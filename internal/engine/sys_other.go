//go:build !linux

package engine

import (
	"syscall"
	"time"
)

// nanosleep sleeps about d.
func nanosleep(d time.Duration) { time.Sleep(d) }

// bindNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not exist.
func bindNoPort(network, address string, c syscall.RawConn) error { return nil }
