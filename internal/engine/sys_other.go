//go:build !linux

package engine

import "time"

// nanosleep sleeps about d.
func nanosleep(d time.Duration) { time.Sleep(d) }
