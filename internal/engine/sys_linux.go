package engine

import (
	"time"

	"golang.org/x/sys/unix"
)

// nanosleep sleeps d on this thread without involving Go's timers.
func nanosleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
