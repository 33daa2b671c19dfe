//go:build linux && !targets_goroutine

package targets

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// tcpKind returns what a TCP connection whose first byte is b0 is: a len32
// connection if b0 is 0, else a byte echo. A len32 frame shorter than
// 16 MiB starts with 0; sockbench's line framing starts with a hex digit
// and its raw framing with the header's 'S', so those are echoed byte for
// byte as before.
func tcpKind(b0 byte) kind {
	if b0 == 0 {
		return kindTCP32
	}
	return kindTCP
}

// len32Frames serves the len32 frames in b, read from c, appending the
// replies to the loop's output, and returns how many bytes it consumed: all
// but an incomplete length, or a length whose payload's first byte has not
// come yet, which the caller carries over to the next read. A frame whose
// payload starts with a room op is a room request, served when it is whole
// (from b if it lies there in full, else gathered in c.in: c.gather); one
// longer than MaxFrame ends the connection. Every other frame is echoed as
// its bytes arrive. A room request that ends c ends the parse.
func (l *loop) len32Frames(c *conn, b []byte) int {
	p, ok := l.streamed(c, b)
	if !ok {
		return len(b)
	}
	for p < len(b) {
		if len(b)-p < 4 {
			return p
		}
		n := int64(binary.BigEndian.Uint32(b[p:]))
		if n > 0 {
			if len(b)-p == 4 {
				return p // the first payload byte says what it is
			}
			if isRoomOp(b[p+4]) {
				if n > int64(l.s.cfg.MaxFrame) {
					l.refuse(c, ws.StatusMessageTooBig, "room request too big")
					return len(b)
				}
				p += 4
				if end := p + int(n); end <= len(b) {
					l.st[cBytesIn] += 4 + n
					l.roomFrame(c, b[p:end])
					p = end
					if c.kind != kindTCP32 {
						return len(b)
					}
					continue
				}
				rest := b[p:]
				in := append(l.pool.get(int(n)), rest...)
				l.dropIn(c)
				c.in, c.gather = in, true
				c.rem, c.flen = n-int64(len(rest)), n
				return len(b)
			}
		}
		l.obuf = append(l.obuf, b[p:p+4]...)
		l.st[cBytesIn] += 4
		l.st[cBytesOut] += 4
		p += 4
		c.rem = n
		k := int(min(int64(len(b)-p), n))
		l.echo32(c, b[p:p+k])
		p += k
	}
	return p
}

// echo32 appends the next part of the echoed len32 frame's payload to the
// output.
func (l *loop) echo32(c *conn, b []byte) {
	l.obuf = append(l.obuf, b...)
	c.rem -= int64(len(b))
	l.st[cBytesIn] += int64(len(b))
	l.st[cBytesOut] += int64(len(b))
}
