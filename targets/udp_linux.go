//go:build linux && !targets_goroutine

package targets

import (
	"fmt"
	"time"

	"github.com/sockbench/sockbench/internal/poll"
)

// udpTimeout bounds how long the UDP thread stays blocked in one call, so
// that it notices Close even if the wake-up (poll.Unblock) were lost.
const udpTimeout = 100 * time.Millisecond

// udpServer serves the UDP socket on a thread of its own, without epoll: it
// blocks in recvmmsg for a batch of datagrams and echoes each to its source
// with one sendmmsg per batch, one wake-up and two system calls per batch.
// One thread owns the socket, so datagrams from one source are echoed in the
// order they came. Once a room request has come, batches go through the
// rooms instead (serveRooms), in the same order.
type udpServer struct {
	s       *Server
	fd      int // blocking (poll.Block)
	dg      *poll.Datagrams
	r       udpRooms
	st      [nCounters]int64 // counted since the last publish
	pub     *loopStats
	lastLog time.Time
}

// newUDPServer makes the detached UDP socket fd blocking for a udpServer.
func newUDPServer(s *Server, fd int) (*udpServer, error) {
	if err := poll.Block(fd, udpTimeout); err != nil {
		return nil, err
	}
	u := &udpServer{s: s, fd: fd, dg: poll.NewDatagrams(udpSlots, udpBufferSize), pub: new(loopStats)}
	u.initRooms()
	return u, nil
}

// run is the UDP thread: read a batch, count it, echo it (or serve it
// through the rooms), expire silent room members; until Close.
func (u *udpServer) run() {
	defer u.s.wg.Done()
	poll.LockThread()
	for !u.s.stopping.Load() {
		n, err := u.dg.RecvWait(u.fd)
		if u.s.stopping.Load() {
			break // what was read may be stop's wake-up, not a datagram
		}
		now := int64(time.Since(u.s.epoch))
		switch {
		case err != nil:
			if !poll.Again(err) { // EAGAIN: nothing within udpTimeout
				u.st[cIOErrors]++
				u.logf("targets: udp read: %v", err)
				u.publish()
			}
		case u.plain(n):
			for i := range n {
				size := int64(len(u.dg.Payload(i)))
				u.st[cBytesIn] += size
				// Counted before they are sent, so that a client that has its
				// echo finds it counted.
				u.st[cDatagrams]++
				u.st[cBytesOut] += size
			}
			u.publish()
			u.echo(n)
		default:
			u.serveRooms(n, now)
		}
		// After serving, so that a member's datagram in this batch counts.
		u.expire(now)
	}
	u.dropRooms()
	if err := poll.Close(u.fd); err != nil {
		u.s.udpCloseErr = fmt.Errorf("targets: close listener: %w", err)
	}
}

// echo sends the n datagrams of the last batch back to their sources. While
// the socket's buffer is full it waits for room (until Close), so a slow
// reader holds the server back rather than growing its memory. A datagram
// that cannot be sent is dropped and counted as an error instead of echoed,
// as are those still unsent at Close.
func (u *udpServer) echo(n int) {
	for lo := 0; lo < n; {
		m, err := u.dg.EchoWait(u.fd, lo, n)
		lo += m
		if err == nil {
			break
		}
		if u.s.stopping.Load() {
			for ; lo < n; lo++ {
				u.uncount(lo)
			}
			break
		}
		if poll.Again(err) {
			continue
		}
		u.uncount(lo)
		u.st[cIOErrors]++
		u.logf("targets: udp write: %v", err)
		lo++
	}
	u.publish()
}

// uncount takes datagram i of the last batch, which was not sent, out of the
// echoed counts.
func (u *udpServer) uncount(i int) {
	size := int64(len(u.dg.Payload(i)))
	u.st[cDatagrams]--
	u.st[cBytesOut] -= size
}

// publish adds what the UDP thread has counted since the last publish to its
// published counters.
func (u *udpServer) publish() {
	for i, v := range u.st {
		if v != 0 {
			u.pub.v[i].Add(v)
			u.st[i] = 0
		}
	}
}

// logf logs a rare event, at most once a second.
func (u *udpServer) logf(format string, args ...any) {
	if now := time.Now(); now.Sub(u.lastLog) >= time.Second {
		u.lastLog = now
		u.s.logf(format, args...)
	}
}
