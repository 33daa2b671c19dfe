//go:build !linux || targets_goroutine

package targets

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/gobwas/ws"
)

const (
	// wsReadBufferSize is the per-connection bufio.Reader size, in bytes.
	wsReadBufferSize = 4 << 10
	// wsInitialPayload is the per-connection frame buffer's first payload
	// capacity, in bytes; it grows (never beyond MaxFrame) as larger frames arrive.
	wsInitialPayload = 4 << 10
)

var (
	// errHandshakeTooLarge ends a handshake whose request exceeds maxHandshakeBytes.
	errHandshakeTooLarge = errors.New("targets: websocket handshake request too large")
	// errNotUTF8 ends a text message that is not valid UTF-8.
	errNotUTF8 = errors.New("targets: " + reasonNotUTF8)
)

// serveWS upgrades c to WebSocket within the handshake timeout, then echoes
// frames until the peer closes, breaks the protocol or goes idle.
func (s *Server) serveWS(c *conn) {
	br := bufio.NewReaderSize(c, wsReadBufferSize)
	_ = c.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	// The upgrader reads through its own pooled bufio.Reader. handshakeReader
	// feeds it the request only, so frames a client sends right behind its
	// request stay in br instead of being swallowed by the upgrader's buffer.
	hr := &handshakeReader{br: br}
	if _, err := s.upgrader.Upgrade(handshakeConn{hr, c.nc}); err != nil {
		s.st.wsHandshakeFailures.Add(1)
		c.lingerClose(nil)
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.idle = s.cfg.IdleTimeout

	w := &wsConn{
		s:     s,
		c:     c,
		br:    br,
		buf:   make([]byte, hdrRoom+max(min(wsInitialPayload, s.cfg.MaxFrame), ws.MaxControlFramePayloadSize)),
		state: ws.StateServerSide,
	}
	w.serve()
}

// wsConn is the state of one upgraded WebSocket connection.
type wsConn struct {
	s  *Server
	c  *conn
	br *bufio.Reader
	// hb is the scratch space ws.ReadHeaderBuffer needs.
	hb [ws.MaxHeaderSize - 2]byte
	// buf holds a reply header in buf[:hdrRoom] (right-aligned) and the frame
	// payload from buf[hdrRoom:], so a payload is read, unmasked and echoed in
	// place with one Write. len(buf) == cap(buf).
	buf   []byte
	state ws.State   // server side, plus StateFragmented inside a fragmented message
	text  bool       // the message in progress is text, checked to be UTF-8 with u8
	u8    utf8Stream // the text message's code point cut by the end of a frame
}

// serve is the frame loop: read a header, check it, read and unmask the
// payload in place (checking a text message's to be UTF-8 as it arrives),
// reply. Fragments are echoed frame by frame, as they come.
func (w *wsConn) serve() {
	maxFrame := int64(w.s.cfg.MaxFrame)
	for {
		h, err := ws.ReadHeaderBuffer(w.br, w.hb[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				w.fail(ws.StatusProtocolError, err.Error())
				return
			}
			w.readFailed(err)
			return
		}
		if err := ws.CheckHeader(h, w.state); err != nil {
			w.fail(ws.StatusProtocolError, err.Error())
			return
		}
		if h.OpCode.IsData() || h.OpCode == ws.OpContinuation {
			if h.Length > maxFrame {
				w.fail(ws.StatusMessageTooBig, "frame too big")
				return
			}
		}
		if h.OpCode == ws.OpText || h.OpCode == ws.OpBinary {
			w.text = h.OpCode == ws.OpText // a message starts
		}
		text := w.text && !h.OpCode.IsControl()
		n := int(h.Length) // bounded by MaxFrame or the 125-byte control limit
		p, err := w.readPayload(n, h.Mask, text)
		if err != nil && !errors.Is(err, errNotUTF8) {
			w.readFailed(err)
			return
		}
		if err != nil || (text && h.Fin && !w.u8.end()) {
			w.fail(ws.StatusInvalidFramePayloadData, reasonNotUTF8)
			return
		}

		switch h.OpCode {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if h.Fin {
				w.state = w.state.Clear(ws.StateFragmented)
			} else {
				w.state = w.state.Set(ws.StateFragmented)
			}
			w.s.st.bytesIn.Add(int64(n))
			if err := w.send(h.Fin, h.OpCode, n); err != nil {
				w.s.ioFailed(err)
				return
			}
			w.s.st.messagesEchoed.Add(1)
			w.s.st.bytesOut.Add(int64(n))
		case ws.OpPing:
			if err := w.send(true, ws.OpPong, n); err != nil {
				w.s.ioFailed(err)
				return
			}
		case ws.OpPong:
			// Unsolicited pongs are allowed and ignored.
		case ws.OpClose:
			w.closeReceived(p)
			return
		}
	}
}

// closeReceived answers the peer's close frame (payload p, unmasked, in place)
// with a close frame echoing its status code; an invalid close payload is a
// protocol error instead.
func (w *wsConn) closeReceived(p []byte) {
	n, code, reason := checkClose(p)
	if code != 0 {
		w.fail(code, reason)
		return
	}
	if err := w.send(true, ws.OpClose, n); err != nil {
		w.s.ioFailed(err)
	}
}

// readFailed ends the connection after a failed read. An idle timeout is
// announced to the peer with close code 1001 (going away).
func (w *wsConn) readFailed(err error) {
	w.s.ioFailed(err)
	if w.c.idle > 0 && isTimeout(err) {
		w.sendClose(ws.StatusGoingAway, "idle timeout")
	}
}

// fail counts a protocol error, sends a close frame with code and reason, and
// drains input briefly so that the peer gets to read it.
func (w *wsConn) fail(code ws.StatusCode, reason string) {
	w.s.st.protocolErrors.Add(1)
	w.sendClose(code, reason)
	w.c.lingerClose(w.buf)
}

// sendClose writes a close frame with code and reason (truncated to fit),
// giving up after closeLinger if the peer does not read.
func (w *wsConn) sendClose(code ws.StatusCode, reason string) {
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
	}
	binary.BigEndian.PutUint16(w.buf[hdrRoom:], uint16(code))
	n := 2 + copy(w.buf[hdrRoom+2:], reason)
	w.c.idle = 0
	_ = w.c.nc.SetWriteDeadline(time.Now().Add(closeLinger))
	_ = w.send(true, ws.OpClose, n)
}

// readPayload reads an n-byte payload into w.buf[hdrRoom:], unmasks it in
// place with mask, and returns it. If text, it checks the bytes to be UTF-8
// as they arrive, going on from the message's earlier frames, and returns
// errNotUTF8 as soon as they cannot be. The buffer grows only as bytes
// actually arrive, never on the declared length alone, and keeps its size
// for later frames.
func (w *wsConn) readPayload(n int, mask [4]byte, text bool) ([]byte, error) {
	end := hdrRoom + n
	for off := hdrRoom; off < end; {
		if off == len(w.buf) {
			grown := make([]byte, min(end, 2*len(w.buf)))
			copy(grown, w.buf[:off])
			w.buf = grown
		}
		m, err := w.br.Read(w.buf[off:min(end, len(w.buf))])
		got := w.buf[off : off+m]
		ws.Cipher(got, mask, off-hdrRoom)
		if text && !w.u8.write(got) {
			return nil, errNotUTF8
		}
		off += m
		if err != nil && off < end {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return w.buf[hdrRoom:end], nil
}

// send writes one unmasked frame whose n-byte payload already sits at
// w.buf[hdrRoom:]: the header goes right in front of it and header and payload
// leave in one Write.
func (w *wsConn) send(fin bool, op ws.OpCode, n int) error {
	start := putHeader(w.buf[:hdrRoom], fin, op, n)
	_, err := w.c.Write(w.buf[start : hdrRoom+n])
	return err
}

// handshakeConn is what the upgrader sees: requests read through a
// handshakeReader, responses written straight to the connection.
type handshakeConn struct {
	io.Reader
	io.Writer
}

// handshakeReader passes the HTTP upgrade request from br up to and including
// the blank line that ends its headers, and nothing after it, so bytes that
// follow stay buffered in br. It fails once more than maxHandshakeBytes have
// been read. Line ends are "\r\n" or "\n", as the upgrader accepts.
type handshakeReader struct {
	br      *bufio.Reader
	read    int  // bytes passed on so far
	lineLen int  // bytes in the current line so far
	lastCR  bool // the current line's last byte is '\r'
	done    bool // the blank line was passed on
}

// Read passes on request bytes buffered in br, filling br first if it is empty.
func (h *handshakeReader) Read(p []byte) (int, error) {
	if h.done {
		return 0, io.EOF
	}
	if h.read >= maxHandshakeBytes {
		return 0, errHandshakeTooLarge
	}
	if len(p) == 0 {
		return 0, nil
	}
	if h.br.Buffered() == 0 {
		if _, err := h.br.Peek(1); err != nil {
			return 0, err
		}
	}
	b, _ := h.br.Peek(min(h.br.Buffered(), len(p), maxHandshakeBytes-h.read))
	n := len(b)
	for i, c := range b {
		if c != '\n' {
			h.lineLen++
			h.lastCR = c == '\r'
			continue
		}
		if h.lineLen == 0 || (h.lineLen == 1 && h.lastCR) {
			n = i + 1
			h.done = true
			break
		}
		h.lineLen, h.lastCR = 0, false
	}
	copy(p, b[:n])
	_, _ = h.br.Discard(n)
	h.read += n
	return n, nil
}
