//go:build linux && !targets_goroutine

package targets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/sockbench/sockbench/internal/poll"
)

// upgradeRequest is a valid opening handshake; its answer's accept key is
// "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
const upgradeRequest = "GET /chat HTTP/1.1\r\n" +
	"Host: example\r\n" +
	"Upgrade: websocket\r\n" +
	"Connection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Sec-WebSocket-Version: 13\r\n\r\n"

// testLoop is a loop driven by the test itself, without its goroutine, over
// one end of a socket pair: the test decides exactly what each read brings.
type testLoop struct {
	t    *testing.T
	l    *loop
	c    *conn
	peer net.Conn    // the client's end
	out  chan []byte // everything the server wrote, once it has closed
	errc chan error  // the peer reader's error
}

// newTestLoop builds a loop for cfg and gives it one connection of kind k.
func newTestLoop(t *testing.T, cfg Config, k kind) *testLoop {
	t.Helper()
	cfg.WS = "unused"
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: cfg}
	s.epoch = time.Now()
	p, err := poll.New(16)
	if err != nil {
		t.Fatal(err)
	}
	l := &loop{s: s, p: p, rbuf: make([]byte, readBufferSize), pub: new(loopStats)}
	s.loops = []*loop{l}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "peer")
	peer, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	_ = peer.SetDeadline(time.Now().Add(testTimeout))
	if err := l.register(fds[0], k); err != nil {
		t.Fatal(err)
	}
	tl := &testLoop{t: t, l: l, c: l.conns[fds[0]], peer: peer, out: make(chan []byte, 1), errc: make(chan error, 1)}
	go func() {
		b, err := io.ReadAll(peer)
		tl.out <- b
		tl.errc <- err
	}()
	t.Cleanup(func() {
		l.shutdown()
		_ = peer.Close()
	})
	return tl
}

// feed writes b to the server in chunks of size bytes, each read by the loop
// on its own, writing out what the server queued meanwhile.
func (tl *testLoop) feed(b []byte, size int) {
	tl.t.Helper()
	for len(b) > 0 && tl.open() {
		n := min(size, len(b))
		if _, err := tl.peer.Write(b[:n]); err != nil {
			tl.t.Fatalf(
				"peer write: %v",
				err)
		}
		b = b[n:]
		tl.l.now = int64(time.Since(tl.l.s.epoch))
		tl.l.readable(tl.c)
		tl.drain()
	}
}

// open reports whether the server still has the connection.
func (tl *testLoop) open() bool { return tl.c.kind != kindFree }

// drain writes the server's queue out while the peer reads it.
func (tl *testLoop) drain() {
	for tl.open() && tl.c.pending() > 0 {
		tl.l.writable(tl.c)
	}
}

// output closes the server's end (unless the server has closed it) and
// returns all it wrote.
func (tl *testLoop) output() []byte {
	tl.t.Helper()
	tl.drain()
	if tl.open() {
		tl.l.closeConn(tl.c)
	}
	b := <-tl.out
	if err := <-tl.errc; err != nil {
		tl.t.Fatalf(
			"peer read: %v",
			err)
	}
	return b
}

// frame is a WebSocket frame as the test client sees it.
type frame struct {
	fin     bool
	op      ws.OpCode
	payload string
}

// serverFrames parses the server's output: the 101 response, then frames.
func serverFrames(t *testing.T, out []byte) []frame {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(out))
	expectUpgrade(t, br)
	var frames []frame
	for {
		h, err := ws.ReadHeader(br)
		if err == io.EOF {
			return frames
		}
		if err != nil {
			t.Fatalf(
				"frame %d header: %v",
				len(frames), err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatalf(
				"frame %d payload: %v",
				len(frames), err)
		}
		frames = append(frames, frame{fin: h.Fin, op: h.OpCode, payload: string(p)})
	}
}

// closeFrame is the close frame the server sends with code (reason left out
// of comparisons: see closeCode).
func closeCode(code ws.StatusCode) frame {
	return frame{fin: true, op: ws.OpClose, payload: string(binary.BigEndian.AppendUint16(nil, uint16(code)))}
}

// TestFramesAcrossReads feeds an upgrade request and frames behind it in reads
// of every size from one byte up: the replies must not depend on where reads
// end.
func TestFramesAcrossReads(t *testing.T) {
	t.Parallel()
	ft := func(fin bool, op ws.OpCode, payload string) []byte {
		return clientFrame(t, masked(fin, op), []byte(payload))
	}
	long := strings.Repeat("0123456789", 7000) // 70,000 bytes: a 64-bit length
	mid := strings.Repeat("x", 300)            // a 16-bit length
	multi := string(multibyteText(300))
	longMulti := string(multibyteText(70000))
	// A ping whose 100-byte payload is given with a 16-bit length field.
	pingMask := [4]byte{9, 8, 7, 6}
	longPing := append([]byte{0x89, 0x80 | 126, 0, 100}, pingMask[:]...)
	pingPayload := bytes.Repeat([]byte("p"), 100)
	ws.Cipher(pingPayload, pingMask, 0)
	longPing = append(longPing, pingPayload...)
	tests := []struct {
		name     string
		maxFrame int
		in       [][]byte
		want     []frame
		wantMsgs int64
		wantErrs int64 // protocol errors
	}{
		{
			name: "pipelined data and control frames",
			in: [][]byte{
				ft(true, ws.OpText, "hello"),
				ft(true, ws.OpBinary, mid),
				ft(true, ws.OpPing, "p"),
				ft(false, ws.OpText, "ab"),
				ft(true, ws.OpPong, "ignored"),
				ft(true, ws.OpContinuation, "cd"),
				ft(true, ws.OpBinary, ""),
				longPing,
				ft(true, ws.OpBinary, long),
				ft(true, ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))),
				ft(true, ws.OpText, "after close: dropped"),
			},
			want: []frame{
				{true, ws.OpText, "hello"},
				{true, ws.OpBinary, mid},
				{true, ws.OpPong, "p"},
				{false, ws.OpText, "ab"},
				{true, ws.OpContinuation, "cd"},
				{true, ws.OpBinary, ""},
				{true, ws.OpPong, strings.Repeat("p", 100)},
				{true, ws.OpBinary, long},
				closeCode(ws.StatusNormalClosure),
			},
			wantMsgs: 6,
		},
		{
			name:     "frame too large",
			maxFrame: 1000,
			in: [][]byte{
				ft(true, ws.OpBinary, "fine"),
				ft(true, ws.OpBinary, strings.Repeat("z", 1001)),
			},
			want:     []frame{{true, ws.OpBinary, "fine"}, closeCode(ws.StatusMessageTooBig)},
			wantMsgs: 1,
			wantErrs: 1,
		},
		{
			name: "unmasked frame",
			in: [][]byte{
				ft(true, ws.OpText, "fine"),
				clientFrame(t, ws.Header{Fin: true, OpCode: ws.OpText}, []byte("no mask")),
			},
			want:     []frame{{true, ws.OpText, "fine"}, closeCode(ws.StatusProtocolError)},
			wantMsgs: 1,
			wantErrs: 1,
		},
		{
			name:     "reserved opcode",
			in:       [][]byte{ft(true, ws.OpCode(0x3), "x")},
			want:     []frame{closeCode(ws.StatusProtocolError)},
			wantErrs: 1,
		},
		{
			name:     "length with most significant bit set",
			in:       [][]byte{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}},
			want:     []frame{closeCode(ws.StatusProtocolError)},
			wantErrs: 1,
		},
		{
			name:     "close reason not utf-8",
			in:       [][]byte{ft(true, ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "\xff")))},
			want:     []frame{closeCode(ws.StatusInvalidFramePayloadData)},
			wantErrs: 1,
		},
		{
			name: "text cut inside code points",
			in: [][]byte{
				ft(false, ws.OpText, "h\xc3"),
				ft(true, ws.OpContinuation, "\xa9"),
				ft(true, ws.OpText, multi),
				ft(true, ws.OpText, longMulti),
			},
			want: []frame{
				{false, ws.OpText, "h\xc3"},
				{true, ws.OpContinuation, "\xa9"},
				{true, ws.OpText, multi},
				{true, ws.OpText, longMulti},
			},
			wantMsgs: 4,
		},
		{
			name: "text not utf-8",
			in: [][]byte{
				ft(true, ws.OpText, "fine"),
				ft(true, ws.OpText, multi+"\xff"+multi),
				ft(true, ws.OpText, "after the close: dropped"),
			},
			want:     []frame{{true, ws.OpText, "fine"}, closeCode(ws.StatusInvalidFramePayloadData)},
			wantMsgs: 1,
			wantErrs: 1,
		},
		{
			name: "text message ends inside a code point",
			in: [][]byte{
				ft(false, ws.OpText, "ab\xe2"),
				ft(true, ws.OpContinuation, "\x82"),
			},
			want:     []frame{{false, ws.OpText, "ab\xe2"}, closeCode(ws.StatusInvalidFramePayloadData)},
			wantMsgs: 1,
			wantErrs: 1,
		},
		{
			name:     "close payload of 1 byte",
			in:       [][]byte{ft(true, ws.OpClose, "x")},
			want:     []frame{closeCode(ws.StatusProtocolError)},
			wantErrs: 1,
		},
	}
	for _, tt := range tests {
		stream := []byte(upgradeRequest)
		for _, f := range tt.in {
			stream = append(stream, f...)
		}
		for _, size := range []int{1, 2, 3, 5, 7, 13, 64, 1000, len(stream)} {
			t.Run(tt.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				t.Parallel()
				tl := newTestLoop(t, Config{MaxFrame: tt.maxFrame}, kindWSHandshake)
				tl.feed(stream, size)
				got := serverFrames(t, tl.output())
				if len(got) != len(tt.want) {
					t.Fatalf(
						"got %d frames, want %d: %s",
						len(got), len(tt.want), summary(got))
				}
				for i, w := range tt.want {
					g := got[i]
					if w.op == ws.OpClose && len(g.payload) >= 2 {
						g.payload = g.payload[:2] // the reason is free text
					}
					if g != w {
						t.Fatalf(
							"frame %d: got %s, want %s",
							i, summary(got[i:i+1]), summary(tt.want[i:i+1]))
					}
				}
				tl.l.publish()
				if got, want := tl.l.pub.v[cMessages].Load(), tt.wantMsgs; got != want {
					t.Errorf(
						"messages echoed %d, want %d",
						got, want)
				}
				if got, want := tl.l.pub.v[cProtocolErrors].Load(), tt.wantErrs; got != want {
					t.Errorf(
						"protocol errors %d, want %d",
						got, want)
				}
			})
		}
	}
}

// TestLargeFrameAcrossReads echoes a 1 MiB frame that arrives in reads of
// uneven sizes. The server streams a binary frame without holding it whole;
// a text frame it gathers, checking it as it comes, and echoes once it is
// whole.
func TestLargeFrameAcrossReads(t *testing.T) {
	t.Parallel()
	bin := make([]byte, DefaultMaxFrame)
	for i := range bin {
		bin[i] = byte(i % 251)
	}
	for _, tt := range []struct {
		name    string
		op      ws.OpCode
		payload []byte
	}{
		{"binary", ws.OpBinary, bin},
		{"text", ws.OpText, multibyteText(DefaultMaxFrame)},
	} {
		stream := append([]byte(upgradeRequest), clientFrame(t, masked(true, tt.op), tt.payload)...)
		stream = append(stream, clientFrame(t, masked(true, ws.OpText), []byte("next"))...)
		for _, size := range []int{997, 4093, 65543} {
			t.Run(tt.name+"/"+strconv.Itoa(size), func(t *testing.T) {
				t.Parallel()
				tl := newTestLoop(t, Config{}, kindWSHandshake)
				carried := 0
				for b := stream; len(b) > 0; b = b[min(size, len(b)):] {
					tl.feed(b[:min(size, len(b))], size)
					if !tl.c.gather {
						carried = max(carried, len(tl.c.in))
					}
				}
				if carried > 256 {
					t.Errorf(
						"carried %d bytes between reads outside a gathered frame, want at most a header and a control frame",
						carried)
				}
				if len(tl.c.in) != 0 {
					t.Errorf(
						"%d bytes still held after the last frame",
						len(tl.c.in))
				}
				got := serverFrames(t, tl.output())
				if len(got) != 2 || got[0].op != tt.op || got[0].payload != string(tt.payload) || got[1] != (frame{true, ws.OpText, "next"}) {
					t.Fatalf(
						"got %s, want %v of %d bytes and text \"next\"",
						summary(got), tt.op, len(tt.payload))
				}
			})
		}
	}
}

// summary describes frames briefly, for failure messages.
func summary(fs []frame) string {
	var b strings.Builder
	for _, f := range fs {
		p := f.payload
		if len(p) > 20 {
			p = fmt.Sprintf("%s... (%d bytes)", p[:20], len(f.payload))
		}
		fmt.Fprintf(&b, "{op %d fin %v %q} ", f.op, f.fin, p)
	}
	return b.String()
}
