package targets

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// clientFrame encodes a client frame: header h, then payload masked with
// h.Mask when h.Masked. h.Length is set from the payload unless already set.
func clientFrame(t *testing.T, h ws.Header, payload []byte) []byte {
	t.Helper()
	if h.Length == 0 {
		h.Length = int64(len(payload))
	}
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		t.Fatal(err)
	}
	p := bytes.Clone(payload)
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	b.Write(p)
	return b.Bytes()
}

// masked returns a masked client header.
func masked(fin bool, op ws.OpCode) ws.Header {
	return ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: ws.NewMask()}
}

// expectClose reads frames until a close frame, skipping data frames the
// server echoed before it, checks its status code, and checks the server then
// closes the connection.
func expectClose(t *testing.T, c wsClient, want ws.StatusCode) {
	t.Helper()
	for {
		h, p := readFrame(t, c)
		if h.OpCode != ws.OpClose {
			continue
		}
		if len(p) < 2 {
			t.Fatalf(
				"close frame payload %q has no status code, want %d",
				p, want)
		}
		if got := ws.StatusCode(binary.BigEndian.Uint16(p)); got != want {
			t.Fatalf(
				"close code %d (%q), want %d",
				got, p[2:], want)
		}
		expectEOF(t, c)
		return
	}
}

func TestWSEcho(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0"})
	tests := []struct {
		name string
		op   ws.OpCode
		size int
	}{
		{
			name: "binary empty",
			op:   ws.OpBinary,
			size: 0,
		},
		{
			name: "binary 1",
			op:   ws.OpBinary,
			size: 1,
		},
		{
			name: "binary 125",
			op:   ws.OpBinary,
			size: 125,
		},
		{
			name: "binary 126",
			op:   ws.OpBinary,
			size: 126,
		},
		{
			name: "binary 65535",
			op:   ws.OpBinary,
			size: 65535,
		},
		{
			name: "binary 65536",
			op:   ws.OpBinary,
			size: 65536,
		},
		{
			name: "binary max frame",
			op:   ws.OpBinary,
			size: DefaultMaxFrame,
		},
		{
			name: "text 5",
			op:   ws.OpText,
			size: 5,
		},
		{
			name: "text 10000",
			op:   ws.OpText,
			size: 10000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialWS(t, s)
			msg := []byte(strings.Repeat("sockbench", tt.size/9+1)[:tt.size])
			// Twice, so the second frame reuses the connection's buffers.
			for range 2 {
				if err := wsutil.WriteClientMessage(c, tt.op, msg); err != nil {
					t.Fatal(err)
				}
				got, op, err := wsutil.ReadServerData(c)
				if err != nil {
					t.Fatal(err)
				}
				if op != tt.op || !bytes.Equal(got, msg) {
					t.Fatalf(
						"got op %v, %d bytes; want op %v, %d bytes",
						op, len(got), tt.op, len(msg))
				}
			}
		})
	}
}

func TestWSFragmentsAndControlFrames(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0"})
	c := dialWS(t, s)
	type frame struct {
		fin     bool
		op      ws.OpCode
		payload string
	}
	send := []frame{
		{
			fin:     false,
			op:      ws.OpText,
			payload: "ab",
		},
		{
			fin:     true,
			op:      ws.OpPing,
			payload: "ping in the middle",
		},
		{
			fin:     true,
			op:      ws.OpPong,
			payload: "unsolicited, ignored",
		},
		{
			fin:     false,
			op:      ws.OpContinuation,
			payload: "cd",
		},
		{
			fin:     true,
			op:      ws.OpContinuation,
			payload: "ef",
		},
		{
			fin:     true,
			op:      ws.OpPing,
			payload: "",
		},
	}
	want := []frame{
		send[0],
		{
			fin:     true,
			op:      ws.OpPong,
			payload: "ping in the middle",
		},
		send[3],
		send[4],
		{
			fin:     true,
			op:      ws.OpPong,
			payload: "",
		},
	}
	var out []byte
	for _, f := range send {
		out = append(out, clientFrame(t, masked(f.fin, f.op), []byte(f.payload))...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		h, p := readFrame(t, c)
		if got := (frame{fin: h.Fin, op: h.OpCode, payload: string(p)}); got != w {
			t.Fatalf(
				"frame %d: got %+v, want %+v",
				i, got, w)
		}
	}
}

func TestWSCloseHandshake(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0"})
	tests := []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{
			name:    "code and reason",
			payload: ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"),
			want:    ws.NewCloseFrameBody(ws.StatusNormalClosure, ""),
		},
		{
			name:    "application code",
			payload: ws.NewCloseFrameBody(4000, ""),
			want:    ws.NewCloseFrameBody(4000, ""),
		},
		{
			name:    "empty",
			payload: nil,
			want:    []byte{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialWS(t, s)
			echoWS(t, c, []byte("hello"))
			if _, err := c.Write(clientFrame(t, masked(true, ws.OpClose), tt.payload)); err != nil {
				t.Fatal(err)
			}
			h, p := readFrame(t, c)
			if h.OpCode != ws.OpClose || !h.Fin || !bytes.Equal(p, tt.want) {
				t.Fatalf(
					"got %v fin=%v %x, want close %x",
					h.OpCode, h.Fin, p, tt.want)
			}
			expectEOF(t, c)
		})
	}
}

func TestWSProtocolErrors(t *testing.T) {
	t.Parallel()
	const maxFrame = 1024
	s := serve(t, Config{WS: "127.0.0.1:0", MaxFrame: maxFrame})
	big := make([]byte, maxFrame+1)
	// A header claiming a 64-bit length with the most significant bit set.
	msbLength := []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	tests := []struct {
		name string
		in   func(t *testing.T) []byte
		want ws.StatusCode
	}{
		{
			name: "unmasked frame",
			in: func(t *testing.T) []byte {
				return clientFrame(t, ws.Header{Fin: true, OpCode: ws.OpBinary}, []byte("hi"))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "oversized frame",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpBinary), big)
			},
			want: ws.StatusMessageTooBig,
		},
		{
			name: "oversized continuation",
			in: func(t *testing.T) []byte {
				first := clientFrame(t, masked(false, ws.OpBinary), []byte("a"))
				return append(first, clientFrame(t, masked(true, ws.OpContinuation), big)...)
			},
			want: ws.StatusMessageTooBig,
		},
		{
			name: "reserved opcode",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpCode(0x3)), []byte("hi"))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "reserved control opcode",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpCode(0xb)), nil)
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "rsv bit without extension",
			in: func(t *testing.T) []byte {
				h := masked(true, ws.OpBinary)
				h.Rsv = ws.Rsv(true, false, false)
				return clientFrame(t, h, []byte("hi"))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "continuation without start",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpContinuation), []byte("hi"))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "new message inside fragmented one",
			in: func(t *testing.T) []byte {
				first := clientFrame(t, masked(false, ws.OpText), []byte("a"))
				return append(first, clientFrame(t, masked(true, ws.OpBinary), []byte("b"))...)
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "control frame over 125 bytes",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpPing), make([]byte, 126))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "fragmented control frame",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(false, ws.OpPing), []byte("p"))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "length with most significant bit set",
			in:   func(*testing.T) []byte { return msbLength },
			want: ws.StatusProtocolError,
		},
		{
			name: "close payload of 1 byte",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpClose), []byte{3})
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "close code not in use",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpClose), ws.NewCloseFrameBody(999, ""))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "close code reserved",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpClose), ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, ""))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "close code above 4999",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpClose), ws.NewCloseFrameBody(5000, ""))
			},
			want: ws.StatusProtocolError,
		},
		{
			name: "close reason not utf-8",
			in: func(t *testing.T) []byte {
				return clientFrame(t, masked(true, ws.OpClose), ws.NewCloseFrameBody(ws.StatusNormalClosure, "\xff\xfe"))
			},
			want: ws.StatusInvalidFramePayloadData,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialWS(t, s)
			if _, err := c.Write(tt.in(t)); err != nil {
				t.Fatal(err)
			}
			expectClose(t, c, tt.want)
		})
	}

	t.Run("max frame accepted", func(t *testing.T) {
		t.Parallel()
		echoWS(t, dialWS(t, s), big[:maxFrame])
	})
}

func TestWSBadHandshakes(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0", HandshakeTimeout: 200 * time.Millisecond})
	good := dialWS(t, s)
	echoWS(t, good, []byte("before"))

	tests := []struct {
		name string
		in   string
	}{
		{
			name: "binary garbage",
			in:   "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
		},
		{
			name: "http without upgrade headers",
			in:   "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		},
		{
			name: "post",
			in:   "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		},
		{
			name: "endless line",
			in:   strings.Repeat("a", 2*maxHandshakeBytes),
		},
		{
			name: "silent until timeout",
			in:   "",
		},
		{
			name: "incomplete request until timeout",
			in:   "GET / HTTP/1.1\r\nHost: x\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, "tcp", s.WSAddr())
			if tt.in != "" {
				_, _ = c.Write([]byte(tt.in)) // may fail once the server gives up
			}
			expectEOF(t, c)
		})
	}

	echoWS(t, good, []byte("after"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Stats().WSHandshakeFailures, int64(len(tests)); got != want {
		t.Fatalf(
			"WSHandshakeFailures = %d, want %d",
			got, want)
	}
}

// TestWSPipelinedHandshake sends the upgrade request and a first frame in one
// write; the frame must not be lost in the upgrader's buffer.
func TestWSPipelinedHandshake(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0"})
	c := dial(t, "tcp", s.WSAddr())
	req := "GET /any/path HTTP/1.1\r\n" +
		"Host: " + s.WSAddr() + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	out := append([]byte(req), clientFrame(t, masked(true, ws.OpText), []byte("right behind"))...)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	expectUpgrade(t, br)
	h, p := readFrame(t, br)
	if h.OpCode != ws.OpText || string(p) != "right behind" {
		t.Fatalf(
			"got %v %q, want text %q",
			h.OpCode, p, "right behind")
	}
}

// expectUpgrade reads the server's answer to the sample upgrade request of
// RFC 6455 (key "dGhlIHNhbXBsZSBub25jZQ==") from br and checks it is a 101
// with the right accept key.
func expectUpgrade(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf(
			"status %d, want 101",
			resp.StatusCode)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf(
			"Sec-WebSocket-Accept %q, want %q",
			got, want)
	}
}

func TestWSIdleTimeout(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0", IdleTimeout: 100 * time.Millisecond})
	c := dialWS(t, s)
	echoWS(t, c, []byte("then nothing"))
	expectClose(t, c, ws.StatusGoingAway)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().IOErrors; got != 1 {
		t.Fatalf(
			"IOErrors = %d, want 1 (the idle timeout)",
			got)
	}
}

// TestWSPeerClosesMidFrame: peers that go away in the middle of a frame or
// of the upgrade request cost the server nothing but the count; the
// connection it shares a loop with is served throughout.
func TestWSPeerClosesMidFrame(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{WS: "127.0.0.1:0", Loops: 1})
	good := dialWS(t, s)
	payload := bytes.Repeat([]byte("x"), 1000)
	dataFrame := clientFrame(t, masked(true, ws.OpBinary), payload)
	ping := clientFrame(t, masked(true, ws.OpPing), []byte("ping payload"))
	textFrame := clientFrame(t, masked(true, ws.OpText), bytes.Repeat([]byte("\u00e9"), 500))
	tests := []struct {
		name      string
		handshake bool   // upgrade first
		send      []byte // then send this and close
		reset     bool   // close with a reset instead of a FIN
		echoed    bool   // read the echo of send before closing
		wantIO    int64  // IOErrors added
		wantHS    int64  // WSHandshakeFailures added
	}{
		{
			name:      "inside a header",
			handshake: true,
			send:      dataFrame[:3],
			wantIO:    1,
		},
		{
			name:      "inside a payload",
			handshake: true,
			send:      dataFrame[:500],
			wantIO:    1,
		},
		{
			// Not a UTF-8 error: the text is cut by the close, not bad.
			name:      "inside a text payload, inside a code point",
			handshake: true,
			send:      textFrame[:8+301], // a 1000-byte payload's header is 8 bytes
			wantIO:    1,
		},
		{
			name:      "inside a control frame",
			handshake: true,
			send:      ping[:len(ping)-3],
			wantIO:    1,
		},
		{
			name:      "reset inside a payload",
			handshake: true,
			send:      dataFrame[:500],
			reset:     true,
			wantIO:    1,
		},
		{
			name:      "between frames",
			handshake: true,
			send:      dataFrame,
			echoed:    true,
		},
		{
			name:   "inside the upgrade request",
			send:   []byte("GET / HTTP/1.1\r\nHost: x\r\nUpg"),
			wantHS: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats()
			var c net.Conn
			var r io.Reader
			if tt.handshake {
				wc := dialWS(t, s)
				c, r = wc.Conn, wc
			} else {
				c = dial(t, "tcp", s.WSAddr())
				// Else the loop may accept it only after the checks below.
				for end := time.Now().Add(testTimeout); s.Stats().ConnsAccepted == before.ConnsAccepted && time.Now().Before(end); {
					time.Sleep(time.Millisecond)
				}
			}
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if tt.echoed {
				readFrame(t, r) // unread, it would make the close a reset
			}
			echoWS(t, good, []byte("meanwhile")) // the loop has read what was sent
			if tt.reset {
				_ = c.(*net.TCPConn).SetLinger(0)
			}
			_ = c.Close()
			deadline := time.Now().Add(testTimeout)
			for s.Stats().ConnsOpen > before.ConnsOpen && time.Now().Before(deadline) {
				echoWS(t, good, []byte("while it closes"))
			}
			after := s.Stats()
			if after.ConnsOpen != before.ConnsOpen {
				t.Fatalf(
					"ConnsOpen %d after the peer left, want %d",
					after.ConnsOpen, before.ConnsOpen)
			}
			if got := after.IOErrors - before.IOErrors; got != tt.wantIO {
				t.Errorf(
					"IOErrors went up by %d, want %d",
					got, tt.wantIO)
			}
			if got := after.WSHandshakeFailures - before.WSHandshakeFailures; got != tt.wantHS {
				t.Errorf(
					"WSHandshakeFailures went up by %d, want %d",
					got, tt.wantHS)
			}
			echoWS(t, good, payload)
		})
	}
}

// TestWSTextUTF8: text messages must be valid UTF-8 (RFC 6455 section 8.1).
// Valid text is echoed frame by frame, whole or fragmented, wherever the
// fragments cut a code point; a frame that makes the message invalid, or
// ends it inside a code point, is not echoed: the connection fails with
// close 1007 and a protocol error is counted. Binary data is not checked.
func TestWSTextUTF8(t *testing.T) {
	t.Parallel()
	type frame struct {
		fin     bool
		op      ws.OpCode
		payload string
	}
	text := func(p string) frame { return frame{true, ws.OpText, p} }
	first := func(op ws.OpCode, p string) frame { return frame{false, op, p} }
	more := func(p string) frame { return frame{false, ws.OpContinuation, p} }
	last := func(p string) frame { return frame{true, ws.OpContinuation, p} }
	ping := frame{true, ws.OpPing, "p"}
	pong := frame{true, ws.OpPong, "p"}
	multibyte := string(multibyteText(3000))
	tests := []struct {
		name    string
		send    []frame
		partial []byte // then these bytes, the start of a frame
		want    []frame
		close   ws.StatusCode // 0: the connection stays open
	}{
		{
			name: "multi-byte text",
			send: []frame{text("h\u00e9llo \u20ac \U0001f600 \U0010ffff"), text(""), text(multibyte)},
			want: []frame{text("h\u00e9llo \u20ac \U0001f600 \U0010ffff"), text(""), text(multibyte)},
		},
		{
			name: "fragments cut inside code points",
			send: []frame{first(ws.OpText, "h\xc3"), more("\xa9 \xe2"), more(""), more("\x82"), last("\xac \xf0\x9f\x98\x80"), text("\u00e9")},
			want: []frame{first(ws.OpText, "h\xc3"), more("\xa9 \xe2"), more(""), more("\x82"), last("\xac \xf0\x9f\x98\x80"), text("\u00e9")},
		},
		{
			name: "ping inside a cut code point",
			send: []frame{first(ws.OpText, "\xe2\x82"), ping, last("\xac")},
			want: []frame{first(ws.OpText, "\xe2\x82"), pong, last("\xac")},
		},
		{
			name: "binary is not checked",
			send: []frame{{true, ws.OpBinary, "\xff\xc0\xaf\xed\xa0\x80"}, first(ws.OpBinary, "\xe2"), last("\x82")},
			want: []frame{{true, ws.OpBinary, "\xff\xc0\xaf\xed\xa0\x80"}, first(ws.OpBinary, "\xe2"), last("\x82")},
		},
		{
			name:  "0xff",
			send:  []frame{text("ok"), text("a\xffb")},
			want:  []frame{text("ok")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "overlong encoding",
			send:  []frame{text("\xc0\xaf")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "surrogate",
			send:  []frame{text("\xed\xa0\x80")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "above U+10FFFF",
			send:  []frame{text("\xf4\x90\x80\x80")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "truncated at FIN",
			send:  []frame{text("ab\xe2\x82")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "truncated at the FIN of a fragmented message",
			send:  []frame{first(ws.OpText, "ab\xe2"), last("\x82")},
			want:  []frame{first(ws.OpText, "ab\xe2")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "surrogate completed in a continuation",
			send:  []frame{first(ws.OpText, "\xed"), last("\xa0\x80")},
			want:  []frame{first(ws.OpText, "\xed")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			name:  "invalid after a large valid part",
			send:  []frame{text(multibyte + "\xff")},
			close: ws.StatusInvalidFramePayloadData,
		},
		{
			// The frame claims 1,000 bytes; its first is enough.
			name:    "failed before the frame ends",
			partial: clientFrame(t, ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: 1000}, []byte("\xff")),
			close:   ws.StatusInvalidFramePayloadData,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := serve(t, Config{WS: "127.0.0.1:0"})
			c := dialWS(t, s)
			var out []byte
			for _, f := range tt.send {
				out = append(out, clientFrame(t, masked(f.fin, f.op), []byte(f.payload))...)
			}
			out = append(out, tt.partial...)
			if tt.close == 0 {
				out = append(out, clientFrame(t, masked(true, ws.OpClose), ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))...)
			}
			if _, err := c.Write(out); err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				h, p := readFrame(t, c)
				if got := (frame{h.Fin, h.OpCode, string(p)}); got != w {
					t.Fatalf(
						"frame %d: got fin %v op %v %s, want fin %v op %v %s",
						i, got.fin, got.op, quoteShort(got.payload), w.fin, w.op, quoteShort(w.payload))
				}
			}
			// Nothing else comes before the close frame.
			wantClose := cmp.Or(tt.close, ws.StatusNormalClosure)
			h, p := readFrame(t, c)
			if h.OpCode != ws.OpClose || len(p) < 2 {
				t.Fatalf(
					"got op %v %s, want close %d",
					h.OpCode, quoteShort(string(p)), wantClose)
			}
			if got := ws.StatusCode(binary.BigEndian.Uint16(p)); got != wantClose {
				t.Fatalf(
					"close code %d (%q), want %d",
					got, p[2:], wantClose)
			}
			expectEOF(t, c)
			var wantErrs int64
			if tt.close != 0 {
				wantErrs = 1
			}
			st := s.Stats()
			if st.ProtocolErrors != wantErrs {
				t.Errorf(
					"ProtocolErrors = %d, want %d",
					st.ProtocolErrors, wantErrs)
			}
			var wantMsgs int64
			for _, w := range tt.want {
				if w.op.IsData() || w.op == ws.OpContinuation {
					wantMsgs++
				}
			}
			if st.MessagesEchoed != wantMsgs {
				t.Errorf(
					"MessagesEchoed = %d, want %d",
					st.MessagesEchoed, wantMsgs)
			}
		})
	}
}

// quoteShort quotes p, or its first 40 bytes and its length if longer, for
// failure messages.
func quoteShort(p string) string {
	if len(p) > 40 {
		return fmt.Sprintf("%+q... (%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("%+q", p)
}
