//go:build linux && !targets_goroutine

package targets

import (
	"io"

	"github.com/gobwas/ws"
)

// upgradeIO is what the upgrader reads the request from and writes its
// response to: the request as it lies in the loop's buffers, and the loop's
// output buffer. One per loop, so a handshake allocates no adapter.
type upgradeIO struct {
	req []byte
	out []byte
}

// Read passes on the rest of the request, then io.EOF.
func (u *upgradeIO) Read(p []byte) (int, error) {
	if len(u.req) == 0 {
		return 0, io.EOF
	}
	n := copy(p, u.req)
	u.req = u.req[n:]
	return n, nil
}

// Write appends to the output.
func (u *upgradeIO) Write(p []byte) (int, error) {
	u.out = append(u.out, p...)
	return len(p), nil
}

// upgrade runs the opening handshake on req, the complete upgrade request
// read from c, appending the response (101, or an HTTP error) to the loop's
// output. It reports whether c is now a WebSocket connection.
func (l *loop) upgrade(c *conn, req []byte) bool {
	l.hs.req, l.hs.out, l.hsPath = req, l.obuf, ""
	_, err := l.upgrader.Upgrade(&l.hs)
	l.obuf, l.hs.req, l.hs.out = l.hs.out, nil, nil
	if err != nil {
		return false
	}
	l.setKind(c, kindWS)
	c.state = ws.StateServerSide
	c.ns = l.hsPath
	return true
}

// frames serves the WebSocket frames in b, unmasking them in place and
// appending the replies to the loop's output, and returns how many bytes it
// consumed: all but an incomplete frame header or control frame, which the
// caller carries over to the next read. A data frame is echoed as its bytes
// arrive: its reply header goes out first, then each part of its payload.
// A protocol error or a close frame moves c to linger and ends the parse.
//
// A binary message whose first payload byte is a room op is a room message
// instead: it is served when it is whole, from b if it lies there in full,
// else gathered in c.in over the reads (c.gather). Its frame header is carried
// over until the first payload byte has arrived. A fragmented room message
// is refused with close 1003.
//
// A text frame is echoed whole once its payload is checked to be UTF-8 (see
// textFrame), so that a bad one can fail the connection with close 1007
// before any of it has gone out.
func (l *loop) frames(c *conn, b []byte) int {
	p, ok := l.streamed(c, b)
	if !ok {
		return len(b)
	}
	for p < len(b) {
		h, hn, err := parseHeader(b[p:])
		if err == errShortHeader {
			return p
		}
		if err == nil {
			err = ws.CheckHeader(h, c.state)
		}
		if err != nil {
			l.fail(c, ws.StatusProtocolError, err.Error())
			return len(b)
		}
		if h.OpCode.IsControl() {
			end := p + hn + int(h.Length) // Length <= 125: CheckHeader
			if end > len(b) {
				return p
			}
			payload := b[p+hn : end]
			ws.Cipher(payload, h.Mask, 0)
			p = end
			switch h.OpCode {
			case ws.OpPing:
				l.obuf = appendHeader(l.obuf, true, ws.OpPong, len(payload))
				l.obuf = append(l.obuf, payload...)
			case ws.OpClose:
				l.closeReceived(c, payload)
				return len(b)
			}
			// Unsolicited pongs are allowed and ignored.
			continue
		}
		if h.Length > int64(l.s.cfg.MaxFrame) {
			l.fail(c, ws.StatusMessageTooBig, "frame too big")
			return len(b)
		}
		if h.OpCode != ws.OpContinuation {
			c.text = h.OpCode == ws.OpText // a message starts
		}
		if h.OpCode == ws.OpBinary && h.Length > 0 {
			if p+hn == len(b) {
				return p // the first payload byte says what it is
			}
			if isRoomOp(b[p+hn] ^ h.Mask[0]) {
				if !h.Fin {
					l.fail(c, ws.StatusUnsupportedData, "fragmented room message")
					return len(b)
				}
				p += hn
				if end := p + int(h.Length); end <= len(b) {
					payload := b[p:end]
					ws.Cipher(payload, h.Mask, 0)
					l.st[cBytesIn] += h.Length
					p = end
					l.roomFrame(c, payload)
					if c.kind != kindWS {
						return len(b)
					}
					continue
				}
				rest := b[p:]
				ws.Cipher(rest, h.Mask, 0)
				in := append(l.pool.get(int(h.Length)), rest...)
				l.dropIn(c) // b may lie in c.in (pipelined after the upgrade request)
				c.in, c.gather = in, true
				c.rem, c.flen, c.mask = h.Length-int64(len(rest)), h.Length, h.Mask
				c.moff = uint8(len(rest) & 3)
				return len(b)
			}
		}
		if h.Fin {
			c.state = c.state.Clear(ws.StateFragmented)
		} else {
			c.state = c.state.Set(ws.StateFragmented)
		}
		if c.text {
			p += hn
			if !l.textFrame(c, h, b[p:]) {
				return len(b)
			}
			p += int(min(int64(len(b)-p), h.Length))
			continue
		}
		l.obuf = appendHeader(l.obuf, h.Fin, h.OpCode, int(h.Length))
		c.rem, c.flen, c.mask, c.moff = h.Length, h.Length, h.Mask, 0
		p += hn
		k := int(min(int64(len(b)-p), c.rem))
		l.echoPayload(c, b[p:p+k])
		p += k
	}
	return p
}

// streamed serves the start of b that continues c's streamed frame, if
// any (c.rem > 0): it is gathered if the frame is a room message, else
// echoed. It returns how many bytes it took, and false if a room request
// ended c.
func (l *loop) streamed(c *conn, b []byte) (int, bool) {
	if c.rem == 0 {
		return 0, true
	}
	framed := c.kind
	p := int(min(int64(len(b)), c.rem))
	switch {
	case c.gather:
		l.gather(c, b[:p])
	case framed == kindWS:
		l.echoPayload(c, b[:p])
	default:
		l.echo32(c, b[:p])
	}
	return p, c.kind == framed
}

// echoPayload unmasks the next part of the streamed data frame's payload in
// place and appends it to the output; the frame is counted when it is complete.
func (l *loop) echoPayload(c *conn, b []byte) {
	ws.Cipher(b, c.mask, int(c.moff))
	l.obuf = append(l.obuf, b...)
	c.moff = uint8((int(c.moff) + len(b)) & 3)
	c.rem -= int64(len(b))
	if c.rem == 0 {
		l.st[cMessages]++
		l.st[cBytesIn] += c.flen
		l.st[cBytesOut] += c.flen
	}
}

// textFrame serves a frame of a text message, header h, whose payload
// starts at b[0]: the payload is unmasked and checked to be UTF-8, going on
// from the message's earlier frames, and echoed whole, from b if it lies there
// in full, else gathered in c.in over the reads (c.gather) and echoed when it
// ends. Gathered, it is checked as its bytes arrive, so a bad one fails as
// soon as its bytes so far cannot start valid UTF-8. It reports false if c
// failed with close 1007.
func (l *loop) textFrame(c *conn, h ws.Header, b []byte) bool {
	if n := int(h.Length); n <= len(b) {
		payload := b[:n]
		ws.Cipher(payload, h.Mask, 0)
		if !c.u8.check(payload, h.Fin) {
			l.fail(c, ws.StatusInvalidFramePayloadData, reasonNotUTF8)
			return false
		}
		l.echoText(c, h.Fin, h.OpCode, payload)
		return true
	}
	ws.Cipher(b, h.Mask, 0)
	if !c.u8.write(b) {
		l.fail(c, ws.StatusInvalidFramePayloadData, reasonNotUTF8)
		return false
	}
	in := append(l.pool.get(len(b)), b...)
	l.dropIn(c) // b may lie in c.in (pipelined after the upgrade request)
	c.in, c.gather, c.op = in, true, h.OpCode
	c.rem, c.flen, c.mask = h.Length-int64(len(b)), h.Length, h.Mask
	c.moff = uint8(len(b) & 3)
	return true
}

// echoText appends the echo of a checked text frame to the output.
func (l *loop) echoText(c *conn, fin bool, op ws.OpCode, payload []byte) {
	l.obuf = appendHeader(l.obuf, fin, op, len(payload))
	l.obuf = append(l.obuf, payload...)
	l.st[cMessages]++
	l.st[cBytesIn] += int64(len(payload))
	l.st[cBytesOut] += int64(len(payload))
}

// gather adds the next part of a gathered frame's payload to c.in,
// unmasked if c is a WebSocket, and checked if it is text; once the payload
// is whole it serves it: a text frame is echoed, a room message served.
func (l *loop) gather(c *conn, b []byte) {
	framed := c.kind
	if framed == kindWS {
		ws.Cipher(b, c.mask, int(c.moff))
		c.moff = uint8((int(c.moff) + len(b)) & 3)
		if c.text && !c.u8.write(b) {
			l.fail(c, ws.StatusInvalidFramePayloadData, reasonNotUTF8)
			return
		}
	}
	c.in = l.pool.grow(c.in, len(b))
	c.in = append(c.in, b...)
	c.rem -= int64(len(b))
	if c.rem > 0 {
		return
	}
	c.gather = false
	if framed == kindWS && c.text {
		fin := !c.state.Is(ws.StateFragmented)
		if fin && !c.u8.end() {
			l.fail(c, ws.StatusInvalidFramePayloadData, reasonNotUTF8)
			return
		}
		l.echoText(c, fin, c.op, c.in)
		l.dropIn(c)
		return
	}
	l.st[cBytesIn] += c.flen
	if framed == kindTCP32 {
		l.st[cBytesIn] += 4
	}
	l.roomFrame(c, c.in)
	if c.kind == framed {
		l.dropIn(c)
	}
}

// closeReceived answers the peer's close frame (payload p, unmasked) with a
// close frame echoing its status code, then lingers; an invalid close
// payload is a protocol error instead.
func (l *loop) closeReceived(c *conn, p []byte) {
	n, code, reason := checkClose(p)
	if code != 0 {
		l.fail(c, code, reason)
		return
	}
	l.obuf = appendHeader(l.obuf, true, ws.OpClose, n)
	l.obuf = append(l.obuf, p[:n]...)
	l.linger(c)
}

// fail counts a protocol error, appends a close frame with code and reason to
// the output and lingers, so that the peer gets to read it.
func (l *loop) fail(c *conn, code ws.StatusCode, reason string) {
	l.st[cProtocolErrors]++
	l.obuf = appendClose(l.obuf, code, reason)
	l.linger(c)
}
