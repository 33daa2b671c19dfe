//go:build linux && !targets_goroutine

package targets

import (
	"github.com/sockbench/sockbench/internal/poll"
)

// maxUDPBatches bounds the recvmmsg calls per readiness event.
const maxUDPBatches = 8

// udpEvent serves the UDP socket: it echoes what is waiting from the last
// batch once the socket is writable, then reads batches of datagrams and
// echoes each to its source with one sendmmsg per batch. One loop owns the
// socket, so datagrams from one source are echoed in the order they came.
func (l *loop) udpEvent(c *conn, ev uint32) {
	if l.udpLo < l.udpHi {
		if ev&(poll.Out|poll.Err) == 0 || !l.echoUDP(c) {
			return
		}
		l.interest(c, poll.In)
	}
	if ev&(poll.In|poll.Err) == 0 {
		return
	}
	for range maxUDPBatches {
		n, err := l.dg.Recv(int(c.fd))
		if err != nil {
			if !poll.Again(err) {
				l.st[cIOErrors]++
				l.logf("targets: udp read: %v", err)
			}
			return
		}
		for i := range n {
			size := int64(len(l.dg.Payload(i)))
			l.st[cBytesIn] += size
			// Counted before they are sent, so that a client that has its
			// echo finds it counted.
			l.st[cDatagrams]++
			l.st[cBytesOut] += size
		}
		l.udpLo, l.udpHi = 0, n
		if !l.echoUDP(c) {
			l.interest(c, poll.Out)
			return
		}
		if n < udpSlots {
			return
		}
	}
}

// echoUDP sends the datagrams waiting in l.dg back to their sources. It
// reports false if the socket's buffer filled first (the rest wait for the
// socket to be writable). A datagram that cannot be sent is dropped and
// counted as an error instead of echoed.
func (l *loop) echoUDP(c *conn) bool {
	l.publish()
	for l.udpLo < l.udpHi {
		n, err := l.dg.Echo(int(c.fd), l.udpLo, l.udpHi)
		l.udpLo += n
		if err == nil {
			break
		}
		if poll.Again(err) {
			return false
		}
		size := int64(len(l.dg.Payload(l.udpLo)))
		l.st[cDatagrams]--
		l.st[cBytesOut] -= size
		l.st[cIOErrors]++
		l.logf("targets: udp write: %v", err)
		l.udpLo++
	}
	return true
}
