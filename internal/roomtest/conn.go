package roomtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/wire"
)

const (
	// handshakeTimeout bounds a WebSocket upgrade.
	handshakeTimeout = 5 * time.Second
	// maxRequest is the largest upgrade request, in bytes.
	maxRequest = 16 << 10
)

// conn is one client connection: a reader goroutine (serve) that handles
// requests and a writer goroutine (writeLoop) that writes the queued
// frames.
type conn struct {
	s      *Server
	nc     net.Conn
	id     int                // connection number, under s.mu
	ns     string             // WebSocket: the namespace, the upgrade request's path
	member atomic.Int64       // member number, -1 before the first join
	rooms  map[*room]struct{} // rooms c is a member of; the reader's only

	mu    sync.Mutex
	ready []frame // frames to write now, in order
	// late are the frames about delayed rooms (j, l, D), in order, each
	// written when it is due; dues never decrease along the queue.
	late []frame
	done bool          // the connection is ending: queue nothing more
	wake chan struct{} // a frame was queued or done was set
}

// frame is one message to write: a room message or an echo.
type frame struct {
	b       []byte    // the message; shared, never modified
	op      ws.OpCode // WebSocket opcode; zero means binary
	deliver bool      // a D: counted in Stats.Deliveries when written
	due     time.Time // late frames: when it may be written
	// With Config.RecordHolds, a D's hold, all but its Write; shared.
	hold *Hold
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, rooms: map[*room]struct{}{}, wake: make(chan struct{}, 1)}
	c.member.Store(-1)
	return c
}

// send queues f for writing. Frames about a delayed room r go through the
// late queue, deliveries due after Faults.Delay and j/l replies as soon as
// the frames before them, so they keep their order.
func (c *conn) send(r *room, f frame) {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	if r != nil && r.delayed {
		f.due = time.Now()
		if f.deliver {
			f.due = f.due.Add(c.s.faults.Delay)
		}
		if n := len(c.late); n > 0 && f.due.Before(c.late[n-1].due) {
			f.due = c.late[n-1].due
		}
		c.late = append(c.late, f)
	} else {
		c.ready = append(c.ready, f)
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stop tells the writer to write what is ready and end the connection.
func (c *conn) stop() {
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
	c.signal()
}

// writeLoop writes queued frames until the connection ends, then closes it.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.nc.Close()
	bw := bufio.NewWriterSize(c.nc, 32<<10)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []frame
	for {
		c.mu.Lock()
		batch = append(batch[:0], c.ready...)
		clear(c.ready)
		c.ready = c.ready[:0]
		now := time.Now()
		i := 0
		for i < len(c.late) && !c.late[i].due.After(now) {
			i++
		}
		batch = append(batch, c.late[:i]...)
		n := copy(c.late, c.late[i:])
		clear(c.late[n:])
		c.late = c.late[:n]
		wait := time.Duration(-1)
		if n > 0 {
			wait = c.late[0].due.Sub(now)
		}
		done := c.done
		c.mu.Unlock()

		if len(batch) > 0 {
			if err := c.write(bw, batch, time.Now()); err != nil {
				c.stop() // the reader ends when the connection closes
				return
			}
			clear(batch)
			continue
		}
		if done {
			return
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-c.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// write frames and writes batch, whose write begins at start.
func (c *conn) write(bw *bufio.Writer, batch []frame, start time.Time) error {
	var hdr [4]byte
	for _, f := range batch {
		if c.s.ws {
			op := f.op
			if op == 0 {
				op = ws.OpBinary
			}
			if err := ws.WriteHeader(bw, ws.Header{Fin: true, OpCode: op, Length: int64(len(f.b))}); err != nil {
				return err
			}
		} else {
			binary.BigEndian.PutUint32(hdr[:], uint32(len(f.b)))
			_, _ = bw.Write(hdr[:])
		}
		if _, err := bw.Write(f.b); err != nil {
			return err
		}
		if f.deliver {
			c.s.st.deliveries.Add(1)
			if f.hold != nil {
				c.s.recordHold(*f.hold, start)
			}
		}
	}
	return bw.Flush()
}

// serve reads and handles the connection's messages until it ends.
func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.s.gone(c)
	br := bufio.NewReader(c.nc)
	if c.s.ws {
		if err := c.upgrade(br); err != nil {
			return
		}
		c.serveWS(br)
		return
	}
	c.serveTCP(br)
}

// upgrade completes the WebSocket handshake, taking the namespace from the
// request path, and makes c an open connection.
func (c *conn) upgrade(br *bufio.Reader) error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	req, err := readRequest(br)
	if err != nil {
		return err
	}
	u := ws.Upgrader{OnRequest: func(uri []byte) error {
		if i := bytes.IndexByte(uri, '?'); i >= 0 {
			uri = uri[:i]
		}
		c.ns = string(uri)
		return nil
	}}
	// The upgrader reads only the request, so frames the client sent right
	// behind it stay in br.
	if _, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(req), c.nc}); err != nil {
		return err
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.closed {
		return net.ErrClosed
	}
	c.s.opened(c)
	return nil
}

// readRequest reads an HTTP request head from br, up to its blank line.
func readRequest(br *bufio.Reader) ([]byte, error) {
	var req []byte
	for len(req) < maxRequest {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		req = append(req, line...)
		if string(line) == "\r\n" || string(line) == "\n" {
			return req, nil
		}
	}
	return nil, errors.New("roomtest: upgrade request too large")
}

// serveWS reads WebSocket frames. Binary messages that are room requests
// are served; other data messages are echoed with their opcode; pings are
// answered; a close is echoed and ends the connection. Fragmented messages,
// too large frames and malformed room requests end it with a close frame.
func (c *conn) serveWS(br *bufio.Reader) {
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if h.Length > MaxMessage {
			c.closeWS(ws.StatusMessageTooBig, "message too big")
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		at := time.Now()
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpBinary, ws.OpText:
			if !h.Fin {
				c.closeWS(ws.StatusUnsupportedData, "fragmented messages are not supported")
				return
			}
			if h.OpCode == ws.OpText || !isRequest(p) {
				c.send(nil, frame{b: p, op: h.OpCode})
				continue
			}
			if err := c.s.request(c, p, at); err != nil {
				c.closeWS(ws.StatusInvalidFramePayloadData, err.Error())
				return
			}
		case ws.OpContinuation:
			c.closeWS(ws.StatusUnsupportedData, "fragmented messages are not supported")
			return
		case ws.OpPing:
			c.send(nil, frame{b: p, op: ws.OpPong})
		case ws.OpPong:
		case ws.OpClose:
			c.send(nil, frame{b: p[:min(len(p), 2)], op: ws.OpClose})
			return
		default:
			c.closeWS(ws.StatusProtocolError, fmt.Sprintf("opcode %d", h.OpCode))
			return
		}
	}
}

// closeWS queues a close frame; the connection ends after it is written.
func (c *conn) closeWS(code ws.StatusCode, reason string) {
	c.send(nil, frame{b: ws.NewCloseFrameBody(code, reason), op: ws.OpClose})
}

// serveTCP reads len32 frames: room requests are served, other messages
// echoed. A frame over MaxMessage or a malformed room request ends the
// connection.
func (c *conn) serveTCP(br *bufio.Reader) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > MaxMessage {
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		at := time.Now()
		if !isRequest(p) {
			c.send(nil, frame{b: p})
			continue
		}
		if err := c.s.request(c, p, at); err != nil {
			return
		}
	}
}

// isRequest reports whether message p is a room request: its first byte is
// J, L, P or E.
func isRequest(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch wire.RoomOp(p[0]) {
	case wire.RoomJoin, wire.RoomLeave, wire.RoomPublish, wire.RoomEcho:
		return true
	}
	return false
}
