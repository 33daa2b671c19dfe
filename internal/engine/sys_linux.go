package engine

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockbench/sockbench/internal/poll"
)

// nanosleep sleeps d on this thread without involving Go's timers.
func nanosleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket about to be bound to
// a source address, so that its port is chosen at connect time, per
// destination, rather than at bind time from ports no socket uses.
func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// CPUs is GOMAXPROCS not counting the Ps reserved for event loops (the
// engine's and the reference server's): the parallelism the program was
// given.
func CPUs() int { return poll.CPUs() }

// spreadLoopback: all of 127.0.0.0/8 is loopback here, so connections to a
// loopback target can come from many source addresses (see netDialer).
const spreadLoopback = true
