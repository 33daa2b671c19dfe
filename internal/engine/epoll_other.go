//go:build !linux

package engine

import "errors"

// epollSupported is false where there is no epoll.
const epollSupported = false

// Epoll is the event-loop engine; it exists on Linux only.
type Epoll struct{ Goroutine }

// NewEpoll reports that this system has no epoll.
func NewEpoll(Config) (*Epoll, error) {
	return nil, errors.New("the epoll engine needs Linux; use --engine goroutine")
}
