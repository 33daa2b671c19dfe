package targets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// testTimeout is the deadline put on every test connection.
const testTimeout = 5 * time.Second

// serve starts a server on loopback for every transport (unless cfg names
// some), logging to t, and closes it when the test ends.
func serve(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.WS == "" && cfg.TCP == "" && cfg.UDP == "" {
		cfg.WS, cfg.TCP, cfg.UDP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	}
	cfg.Logf = t.Logf
	s, err := Serve(cfg)
	if err != nil {
		t.Fatalf(
			"Serve: %v",
			err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// dial opens a connection with a testTimeout deadline, closed when the test ends.
func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(network, addr, testTimeout)
	if err != nil {
		t.Fatalf(
			"dial %s %s: %v",
			network, addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// wsClient is an upgraded client connection; Read drains bytes the dialer
// buffered past the handshake response first.
type wsClient struct {
	net.Conn
	r io.Reader
}

func (c wsClient) Read(p []byte) (int, error) { return c.r.Read(p) }

// dialWS opens a WebSocket connection to s with a testTimeout deadline.
func dialWS(t *testing.T, s *Server) wsClient {
	t.Helper()
	return dialPath(t, s, "/")
}

// dialPath opens a WebSocket connection to s on request path path (the
// namespace of its rooms) with a testTimeout deadline.
func dialPath(t *testing.T, s *Server, path string) wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	url := "ws://" + dialable(s.WSAddr()) + path
	c, br, _, err := ws.Dialer{}.Dial(ctx, url)
	if err != nil {
		t.Fatalf(
			"ws dial %s: %v",
			url, err)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { _ = c.Close() })
	if br != nil {
		return wsClient{Conn: c, r: br}
	}
	return wsClient{Conn: c, r: c}
}

// readFrame reads one server frame from r and returns its header and payload.
func readFrame(t *testing.T, r io.Reader) (ws.Header, []byte) {
	t.Helper()
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf(
			"read frame header: %v",
			err)
	}
	if h.Masked {
		t.Fatalf(
			"server frame is masked: %+v",
			h)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf(
			"read frame payload (%d bytes): %v",
			h.Length, err)
	}
	return h, p
}

// expectEOF checks that the server has closed c: a read ends with EOF or a
// reset, not with the test deadline.
func expectEOF(t *testing.T, r io.Reader) {
	t.Helper()
	n, err := io.Copy(io.Discard, r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf(
			"connection still open after %d more bytes: %v",
			n, err)
	}
}

// echoWS sends one binary message on c and checks that it comes back.
func echoWS(t *testing.T, c wsClient, msg []byte) {
	t.Helper()
	if err := wsutil.WriteClientMessage(c, ws.OpBinary, msg); err != nil {
		t.Fatalf(
			"write: %v",
			err)
	}
	got, op, err := wsutil.ReadServerData(c)
	if err != nil {
		t.Fatalf(
			"read echo: %v",
			err)
	}
	if op != ws.OpBinary || !bytes.Equal(got, msg) {
		t.Fatalf(
			"got op %v %q, want op %v %q",
			op, got, ws.OpBinary, msg)
	}
}

// echoTCP writes msg on c and checks that it comes back.
func echoTCP(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf(
			"write: %v",
			err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf(
			"read echo: %v",
			err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf(
			"got %q, want %q",
			got, msg)
	}
}

func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{
			name: "no transport",
			cfg:  Config{},
			want: ErrNoTransport.Error(),
		},
		{
			name: "negative max frame",
			cfg:  Config{TCP: "127.0.0.1:0", MaxFrame: -1},
			want: "MaxFrame",
		},
		{
			name: "negative handshake timeout",
			cfg:  Config{WS: "127.0.0.1:0", HandshakeTimeout: -time.Second},
			want: "HandshakeTimeout",
		},
		{
			name: "negative idle timeout",
			cfg:  Config{WS: "127.0.0.1:0", IdleTimeout: -time.Second},
			want: "IdleTimeout",
		},
		{
			name: "bad udp address",
			cfg:  Config{WS: "127.0.0.1:0", UDP: "127.0.0.1:notaport"},
			want: "udp listen",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Serve(tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatalf(
					"Serve(%+v) succeeded, want error containing %q",
					tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf(
					"got error %q, want it to contain %q",
					err, tt.want)
			}
		})
	}
}

func TestServeReleasesListenersOnError(t *testing.T) {
	t.Parallel()
	busy := serve(t, Config{TCP: "127.0.0.1:0"})
	// WS binds first, then TCP fails on the busy port: the WS port must be freed.
	wsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr := wsLn.Addr().String()
	_ = wsLn.Close()
	if _, err := Serve(Config{WS: wsAddr, TCP: busy.TCPAddr()}); err == nil {
		t.Fatalf(
			"Serve on busy TCP port %s succeeded",
			busy.TCPAddr())
	}
	ln, err := net.Listen("tcp", wsAddr)
	if err != nil {
		t.Fatalf(
			"WS port not released after failed Serve: %v",
			err)
	}
	_ = ln.Close()
}

func TestAddrsAndURL(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{})
	tests := []struct {
		transport string
		addr      string
		want      string
	}{
		{
			transport: "ws",
			addr:      s.WSAddr(),
			want:      "ws://" + s.WSAddr() + "/",
		},
		{
			transport: "tcp",
			addr:      s.TCPAddr(),
			want:      "tcp://" + s.TCPAddr(),
		},
		{
			transport: "udp",
			addr:      s.UDPAddr(),
			want:      "udp://" + s.UDPAddr(),
		},
		{
			transport: "sctp",
			want:      "",
		},
	}
	for _, tt := range tests {
		if got := s.URL(tt.transport); got != tt.want {
			t.Errorf(
				"URL(%q) = %q, want %q",
				tt.transport, got, tt.want)
		}
		if tt.addr != "" && (!strings.HasPrefix(tt.addr, "127.0.0.1:") || strings.HasSuffix(tt.addr, ":0")) {
			t.Errorf(
				"%s address %q is not a bound loopback address",
				tt.transport, tt.addr)
		}
	}

	only := serve(t, Config{TCP: ":0"})
	if got, want := only.WSAddr(), ""; got != want {
		t.Errorf(
			"WSAddr with WS off = %q, want %q",
			got, want)
	}
	if got := only.URL("ws"); got != "" {
		t.Errorf(
			"URL(ws) with WS off = %q, want empty",
			got)
	}
	if got := only.URL("tcp"); !strings.HasPrefix(got, "tcp://127.0.0.1:") {
		t.Errorf(
			"URL(tcp) for wildcard listener = %q, want tcp://127.0.0.1:port",
			got)
	}
}

func TestCloseClosesConnections(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{})
	wc := dialWS(t, s)
	echoWS(t, wc, []byte("before close"))
	tc := dial(t, "tcp", s.TCPAddr())
	echoTCP(t, tc, []byte("before close"))
	half := dial(t, "tcp", s.WSAddr()) // accepted, handshake never sent

	if err := s.Close(); err != nil {
		t.Fatalf(
			"Close: %v",
			err)
	}
	for name, r := range map[string]io.Reader{"websocket": wc, "tcp": tc, "mid-handshake": half} {
		t.Run(name, func(t *testing.T) { expectEOF(t, r) })
	}
	if err := s.Close(); err != nil {
		t.Fatalf(
			"second Close: %v",
			err)
	}
	if got := s.Stats().ConnsOpen; got != 0 {
		t.Fatalf(
			"ConnsOpen after Close = %d, want 0",
			got)
	}
	c, err := net.DialTimeout("tcp", s.WSAddr(), testTimeout)
	if err == nil {
		_ = c.Close()
		t.Fatalf(
			"dial %s after Close succeeded",
			s.WSAddr())
	}
}

// TestCloseLeavesNoGoroutines is not parallel: it counts the process's goroutines.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()

	s, err := Serve(Config{WS: "127.0.0.1:0", TCP: "127.0.0.1:0", UDP: "127.0.0.1:0", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		echoWS(t, dialWS(t, s), []byte("x"))
		echoTCP(t, dial(t, "tcp", s.TCPAddr()), []byte("x"))
		dial(t, "tcp", s.WSAddr())
	}
	echoTCP(t, dial(t, "udp", s.UDPAddr()), []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatalf(
			"Close: %v",
			err)
	}

	// Close has waited for every server goroutine; the last of them may still
	// be returning from its deferred Done, so poll briefly.
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf(
			"goroutines: %d before Serve, %d after Close\n%s",
			before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{})

	msg := []byte("0123456789")
	for range 2 {
		c := dialWS(t, s)
		for range 3 {
			echoWS(t, c, msg)
		}
		if err := wsutil.WriteClientMessage(c, ws.OpPing, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		if h, _ := readFrame(t, c); h.OpCode != ws.OpPong {
			t.Fatalf(
				"got %v, want pong",
				h.OpCode)
		}
	}
	echoTCP(t, dial(t, "tcp", s.TCPAddr()), bytes.Repeat(msg, 10))
	u := dial(t, "udp", s.UDPAddr())
	echoTCP(t, u, bytes.Repeat(msg, 5))
	echoTCP(t, u, bytes.Repeat(msg, 5))

	bad := dialWS(t, s)
	if err := ws.WriteFrame(bad, ws.NewBinaryFrame(msg)); err != nil { // unmasked
		t.Fatal(err)
	}
	expectEOF(t, bad)

	garbage := dial(t, "tcp", s.WSAddr())
	if _, err := garbage.Write([]byte("garbage\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, garbage)

	if err := s.Close(); err != nil { // waits for every counter update
		t.Fatal(err)
	}
	want := Stats{
		ConnsAccepted:       5, // 2 good ws, 1 tcp, 1 bad ws, 1 garbage
		ConnsOpen:           0,
		WSHandshakeFailures: 1,
		MessagesEchoed:      6,
		BytesIn:             60 + 100 + 100,
		BytesOut:            60 + 100 + 100,
		DatagramsEchoed:     2,
		ProtocolErrors:      1,
		IOErrors:            0,
	}
	if got := s.Stats(); got != want {
		t.Fatalf(
			"got  %+v\nwant %+v",
			got, want)
	}
}

// TestEchoAllocs checks the echo paths allocate nothing per message, server and
// test client together. Not parallel: it counts the process's allocations.
func TestEchoAllocs(t *testing.T) {
	for _, idle := range []time.Duration{0, time.Minute} {
		s := serve(t, Config{IdleTimeout: idle})
		payload := bytes.Repeat([]byte("a"), 64)
		frame := ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(payload)))
		wc := io.ReadWriter(dialWS(t, s)) // boxed once, not per call
		tc := dial(t, "tcp", s.TCPAddr())
		uc := dial(t, "udp", s.UDPAddr())
		reply := make([]byte, 2+len(payload))
		// Text, checked to be UTF-8: 64 bytes of multi-byte text, whole and
		// as a fragmented message cut inside a code point.
		text := []byte("h\u00e9llo \u20ac\U0001f600 " + strings.Repeat("\u65e5", 15) + "ab")
		textFrame := ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame(text)))
		fragments := append(ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpText, false, text[:2]))),
			ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, text[2:])))...)

		tests := []struct {
			name string
			fn   func() error
		}{
			{
				name: "websocket",
				fn: func() error {
					if _, err := wc.Write(frame); err != nil {
						return err
					}
					_, err := io.ReadFull(wc, reply)
					return err
				},
			},
			{
				name: "websocket text",
				fn: func() error {
					if _, err := wc.Write(textFrame); err != nil {
						return err
					}
					_, err := io.ReadFull(wc, reply[:2+len(text)])
					return err
				},
			},
			{
				name: "websocket text in fragments",
				fn: func() error {
					if _, err := wc.Write(fragments); err != nil {
						return err
					}
					_, err := io.ReadFull(wc, reply[:4+len(text)])
					return err
				},
			},
			{
				name: "tcp",
				fn: func() error {
					if _, err := tc.Write(payload); err != nil {
						return err
					}
					_, err := io.ReadFull(tc, reply[:len(payload)])
					return err
				},
			},
			{
				name: "udp",
				fn: func() error {
					if _, err := uc.Write(payload); err != nil {
						return err
					}
					_, err := uc.Read(reply)
					return err
				},
			},
		}
		for _, tt := range tests {
			var err error
			allocs := testing.AllocsPerRun(200, func() {
				if e := tt.fn(); e != nil && err == nil {
					err = e
				}
			})
			if err != nil {
				t.Fatalf(
					"%s (idle %v): %v",
					tt.name, idle, err)
			}
			if allocs != 0 {
				t.Errorf(
					"%s (idle %v): %v allocs per echo, want 0",
					tt.name, idle, allocs)
			}
		}
	}
}

func TestPutHeaderMatchesGobwas(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary, ws.OpContinuation, ws.OpClose, ws.OpPong} {
			for _, fin := range []bool{true, false} {
				var want bytes.Buffer
				if err := ws.WriteHeader(&want, ws.Header{Fin: fin, OpCode: op, Length: int64(n)}); err != nil {
					t.Fatal(err)
				}
				dst := make([]byte, hdrRoom)
				got := dst[putHeader(dst, fin, op, n):]
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf(
						"putHeader(fin=%v, op=%v, n=%d) = %x, want %x",
						fin, op, n, got, want.Bytes())
				}
			}
		}
	}
}
