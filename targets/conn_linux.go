//go:build linux && !targets_goroutine

package targets

import (
	"math/bits"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/sockbench/sockbench/internal/poll"
)

// conn is one socket a loop owns: a connection, a listener or the UDP
// socket. It is kept small: an idle connection is this struct and nothing else.
type conn struct {
	fd       int32
	idx      int32  // position in the loop's list
	events   uint32 // the interest registered with epoll
	kind     kind
	state    ws.State   // WebSocket: server side, plus fragmented inside a message
	paused   bool       // not reading: the queue is full (listener: accepts paused)
	shut     bool       // the write side is shut (linger)
	moff     uint8      // WebSocket: offset into mask of the next payload byte
	gather   bool       // WebSocket, len32: the streamed frame is gathered in in, to be served whole (a room message, or a text frame)
	roomed   bool       // has been in a room: not recycled (see forget)
	text     bool       // WebSocket: the message in progress is text, checked to be UTF-8 with u8
	op       ws.OpCode  // WebSocket: the gathered text frame's opcode (text or continuation)
	mask     [4]byte    // WebSocket: the streamed frame's mask
	u8       utf8Stream // WebSocket: the text message's code point cut by the end of a frame or read
	rem      int64      // WebSocket, len32: payload bytes of the streamed frame still to come
	flen     int64      // WebSocket, len32: the streamed frame's payload length
	last     int64      // loop clock, ns: the last read or write progress
	deadline int64      // loop clock, ns: handshake or linger deadline; listener: end of accept pause
	backoff  int64      // listener: the current accept pause, ns
	in       []byte     // bytes carried to the next read: an incomplete frame or upgrade request, or a gathered frame's payload so far
	ns       string     // WebSocket: the request path, the namespace of its rooms
	rooms    []*room    // the rooms c is a member of; nil if none
	out      []byte     // queued replies; out[off:] is unsent
	off      int
}

// pending returns the bytes queued on c and not yet written.
func (c *conn) pending() int { return len(c.out) - c.off }

// interest registers c for events ev with epoll, if that is a change.
func (l *loop) interest(c *conn, ev uint32) {
	if c.events == ev {
		return
	}
	c.events = ev
	if err := l.p.Mod(int(c.fd), ev); err != nil {
		l.logf("targets: epoll mod: %v", err)
	}
}

// update registers c for what it needs: input unless paused, output while
// anything is queued.
func (l *loop) update(c *conn) {
	var ev uint32
	if !c.paused {
		ev = poll.In
	}
	if c.pending() > 0 {
		ev |= poll.Out
	}
	l.interest(c, ev)
}

// connEvent serves a readiness event on a connection.
func (l *loop) connEvent(c *conn, ev uint32) {
	if ev&poll.Out != 0 && !l.writable(c) {
		return
	}
	if ev&(poll.In|poll.Hup|poll.Err) == 0 {
		return
	}
	if c.paused {
		// Not reading: only a dead socket gets here. Its queue is lost.
		if ev&(poll.Hup|poll.Err) != 0 {
			l.st[cIOErrors]++
			l.closeConn(c)
		}
		return
	}
	l.readable(c)
}

// readable reads what c's peer sent, into the loop's read buffer behind any
// bytes carried over from the last read, and serves it; up to
// maxReadsPerEvent reads while reads fill the buffer. A read that does not
// fill the buffer has emptied the socket, so the read that would only return
// EAGAIN is skipped (the poller is level-triggered: anything that arrives
// meanwhile is reported by the next wait).
func (l *loop) readable(c *conn) {
	for range maxReadsPerEvent {
		// An incomplete frame is copied in front of the new bytes (it is
		// at most a header and a control frame); an incomplete upgrade
		// request (up to 16 KiB) has new bytes appended to it instead.
		t := 0
		if (c.kind == kindWS || c.kind == kindTCP32) && !c.gather {
			t = len(c.in)
		}
		room := len(l.rbuf) - t
		if c.kind != kindLinger {
			// A text frame being gathered goes out whole when it ends:
			// its bytes count as queued already.
			held := 0
			if c.gather && c.text {
				held = len(c.in)
			}
			room = min(room, l.s.cfg.MaxPending-c.pending()-held-outSlack)
			if room < minReadRoom {
				if c.pending() > 0 || held == 0 {
					c.paused = true
					l.update(c)
					return
				}
				// Nothing queued to wait for: a text frame longer than
				// MaxPending (MaxFrame is larger) is read on, and its
				// echo takes the queue over MaxPending.
				room = min(len(l.rbuf)-t, minReadRoom)
			}
		}
		n, err := poll.Read(int(c.fd), l.rbuf[t:t+room])
		if n <= 0 {
			if err != nil && poll.Again(err) {
				return
			}
			l.readEnded(c, err)
			return
		}
		c.last = l.now
		var b []byte
		switch {
		case t > 0:
			copy(l.rbuf, c.in)
			l.dropIn(c)
			b = l.rbuf[:t+n]
		case c.kind == kindWSHandshake && len(c.in) > 0:
			t = len(c.in)
			c.in = l.pool.grow(c.in, n)
			c.in = append(c.in, l.rbuf[:n]...)
			b = c.in
		default:
			b = l.rbuf[:n]
		}
		if !l.input(c, b, t) || n < room {
			return
		}
	}
}

// readEnded closes c after its peer closed (err nil) or a read failed.
func (l *loop) readEnded(c *conn, err error) {
	switch c.kind {
	case kindWSHandshake:
		l.st[cHandshakeFailures]++
	case kindWS:
		if err != nil || c.rem > 0 || len(c.in) > 0 {
			l.st[cIOErrors]++ // reset, or closed in the middle of a frame
		}
	case kindTCPNew, kindTCP, kindTCP32:
		if err != nil {
			l.st[cIOErrors]++
		}
	}
	l.closeConn(c)
}

// input serves b, the bytes read from c; bytes before from were seen by an
// earlier read (only for an upgrade request in parts). It reports false if
// c was closed.
func (l *loop) input(c *conn, b []byte, from int) bool {
	if c.kind == kindTCPNew {
		l.setKind(c, tcpKind(b[0]))
	}
	switch c.kind {
	case kindTCP:
		l.st[cBytesIn] += int64(len(b))
		l.st[cBytesOut] += int64(len(b))
		return l.send(c, b)
	case kindLinger:
		return true // discarded
	case kindWSHandshake:
		end := headersEnd(b[:min(len(b), maxHandshakeBytes)], from)
		if end < 0 {
			if len(b) >= maxHandshakeBytes {
				l.st[cHandshakeFailures]++
				l.linger(c)
				return l.send(c, nil)
			}
			if len(c.in) == 0 {
				c.in = append(l.pool.get(len(b)), b...)
			}
			return true
		}
		if !l.upgrade(c, b[:end]) {
			l.st[cHandshakeFailures]++
			l.linger(c)
		}
		b = b[end:]
	}
	if framed := c.kind; framed == kindWS || framed == kindTCP32 {
		l.cur = c
		var k int
		if framed == kindWS {
			k = l.frames(c, b)
		} else {
			k = l.len32Frames(c, b)
		}
		l.cur = nil
		if c.kind == framed && k < len(b) {
			l.keepIn(c, b[k:])
		} else if !c.gather {
			l.dropIn(c)
		}
	} else {
		l.dropIn(c)
	}
	ok := l.send(c, l.obuf)
	l.obuf = l.obuf[:0]
	return ok
}

// keepIn carries b, the unserved end of a read, over to c's next read.
func (l *loop) keepIn(c *conn, b []byte) {
	in := l.pool.get(len(b))
	in = append(in, b...)
	l.dropIn(c) // b may lie in c.in: copy first
	c.in = in
}

// dropIn releases c's carried-over bytes.
func (l *loop) dropIn(c *conn) {
	l.pool.put(c.in)
	c.in = nil
}

// linger starts ending c: what is queued goes out, then the write side is
// shut and input discarded until the peer closes or closeLinger passes.
func (l *loop) linger(c *conn) {
	l.dropIn(c)
	l.setKind(c, kindLinger)
	c.deadline = l.now + int64(closeLinger)
	c.paused = false
	c.rem = 0
	c.gather = false
	if c.rooms != nil {
		l.leaveAll(c)
	}
	l.update(c)
}

// send writes b to c with one write, first publishing the counters so that
// a peer that has its reply finds it counted, and queues what the socket does
// not take. A lingering connection whose queue is empty gets its write side
// shut. It reports false if c was closed.
func (l *loop) send(c *conn, b []byte) bool {
	if len(b) > 0 {
		if c.pending() > 0 {
			l.enqueue(c, b)
			return true
		}
		l.publish()
		n, err := poll.Write(int(c.fd), b)
		if err != nil && !poll.Again(err) {
			if c.kind != kindLinger {
				l.st[cIOErrors]++
			}
			l.closeConn(c)
			return false
		}
		n = max(n, 0)
		if n > 0 {
			c.last = l.now
		}
		if n < len(b) {
			l.enqueue(c, b[n:])
			l.update(c)
			return true
		}
	}
	if c.kind == kindLinger && !c.shut && c.pending() == 0 {
		l.publish() // a peer that reads the end finds what ended it counted
		c.shut = true
		_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
	}
	return true
}

// enqueue appends b to c's queue. Reads are sized so that the queue never
// exceeds MaxPending.
func (l *loop) enqueue(c *conn, b []byte) {
	if c.out == nil {
		c.out = l.pool.get(len(b))
	} else if cap(c.out)-len(c.out) < len(b) && c.off > 0 {
		c.out = c.out[:copy(c.out, c.out[c.off:])]
		c.off = 0
	}
	c.out = l.pool.grow(c.out, len(b))
	c.out = append(c.out, b...)
	if p := int64(c.pending()); p > l.pub.peakQueued.Load() {
		l.pub.peakQueued.Store(p)
	}
}

// writable writes c's queue. It resumes reading once the queue is down to
// half of MaxPending, and shuts a lingering connection's write side once it
// is empty. It reports false if c was closed.
func (l *loop) writable(c *conn) bool {
	if c.pending() > 0 {
		n, err := poll.Write(int(c.fd), c.out[c.off:])
		if err != nil && !poll.Again(err) {
			if c.kind != kindLinger {
				l.st[cIOErrors]++
			}
			l.closeConn(c)
			return false
		}
		if n > 0 {
			c.last = l.now
			c.off += n
		}
		if c.pending() == 0 {
			l.pool.put(c.out)
			c.out, c.off = nil, 0
		}
	}
	if c.paused && c.pending() <= l.s.cfg.MaxPending/2 {
		c.paused = false
	}
	l.update(c)
	return l.send(c, nil)
}

// bufPool keeps a loop's free buffers by power-of-two size, from 256 bytes
// up, holding at most poolBytes in all.
type bufPool struct {
	free  [40][][]byte
	bytes int
}

// class returns the size class of an n-byte buffer.
func class(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// get returns an empty buffer with room for at least n bytes.
func (p *bufPool) get(n int) []byte {
	c := class(n)
	if k := len(p.free[c]); k > 0 {
		b := p.free[c][k-1]
		p.free[c] = p.free[c][:k-1]
		p.bytes -= cap(b)
		return b
	}
	return make([]byte, 0, 1<<(c+minBufShift))
}

// put returns b to the pool (nil is ignored).
func (p *bufPool) put(b []byte) {
	if cap(b) == 0 || p.bytes+cap(b) > poolBytes {
		return
	}
	c := class(cap(b))
	if cap(b) != 1<<(c+minBufShift) {
		return // not one of ours
	}
	p.bytes += cap(b)
	p.free[c] = append(p.free[c], b[:0])
}

// grow returns b with room for n more bytes, moved to a bigger pooled buffer
// if need be.
func (p *bufPool) grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := append(p.get(len(b)+n), b...)
	p.put(b)
	return nb
}
