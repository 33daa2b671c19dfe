// Package targets is sockbench's embedded reference server: a WebSocket, TCP
// and UDP echo server that `sockbench run` starts in-process when no target is
// given and that `sockbench serve` runs standalone.
//
// Every transport echoes what it receives, unchanged, so the measurement
// header a client puts at the start of each payload comes back as it was sent:
//
//   - WebSocket: each data frame (text, binary or continuation) is echoed as
//     one unmasked frame with the same opcode and FIN bit; pings get pongs;
//     a close frame gets a close reply. Protocol violations are answered with
//     a close frame carrying 1002 (protocol error) or 1009 (message too big).
//     Text payloads are echoed without checking that they are valid UTF-8.
//   - TCP: bytes are echoed as they arrive, so any framing (len32, lines, raw)
//     works.
//   - UDP: each datagram is echoed back to its source address.
//
// The server is built to stay out of the measurement: one goroutine per
// connection, one read buffer and one write buffer per connection, no
// allocation per message.
package targets

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Defaults applied by Serve to zero Config fields.
const (
	// DefaultMaxFrame is the largest WebSocket frame payload accepted, in bytes (1 MiB).
	DefaultMaxFrame = 1 << 20
	// DefaultHandshakeTimeout bounds the WebSocket opening handshake.
	DefaultHandshakeTimeout = 10 * time.Second
)

const (
	// tcpBufferSize is the TCP echo read chunk, in bytes (capped by Config.MaxFrame).
	tcpBufferSize = 32 << 10
	// udpBufferSize is the UDP datagram buffer, in bytes: larger than any IPv4/IPv6 UDP payload.
	udpBufferSize = 64 << 10
	// udpSocketBuffer is the kernel socket buffer requested for the UDP socket, in bytes
	// (best effort; the kernel caps it at net.core.rmem_max / wmem_max).
	udpSocketBuffer = 4 << 20
	// closeLinger is how long a connection failed by the server keeps draining
	// input after its write side is shut, so that the peer reads the close frame
	// or HTTP error instead of a reset.
	closeLinger = time.Second
	// maxAcceptBackoff caps the pause after a failed Accept (for example EMFILE).
	maxAcceptBackoff = time.Second
)

// ErrNoTransport is returned by Serve when Config enables no transport.
var ErrNoTransport = errors.New("targets: no transport configured (set WS, TCP or UDP)")

// Config says which transports to serve and how defensive to be. Zero
// MaxFrame and HandshakeTimeout select the defaults; the zero Config serves
// nothing (Serve returns ErrNoTransport).
type Config struct {
	// WS is the listen address for WebSocket, e.g. "127.0.0.1:0"; "" = off.
	WS string
	// TCP is the listen address for TCP echo; "" = off.
	TCP string
	// UDP is the listen address for UDP echo; "" = off.
	UDP string
	// MaxFrame is the largest WebSocket data frame payload accepted, in bytes;
	// larger frames are refused with close code 1009. It also caps the TCP read
	// chunk (32 KiB). 0 = DefaultMaxFrame (1 MiB).
	MaxFrame int
	// HandshakeTimeout bounds the whole WebSocket opening handshake, from accept
	// to the 101 response. 0 = DefaultHandshakeTimeout (10 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a WebSocket or TCP connection on which nothing could be
	// read (or written) for that long; WebSocket peers get close code 1001 first.
	// 0 = no idle timeout.
	IdleTimeout time.Duration
	// Logf receives rare events (accept failures, socket errors); may be nil.
	// It is never called per message or per connection.
	Logf func(format string, args ...any)
}

// Stats is a snapshot of the server's counters since Serve. Byte counts are
// application payload: WebSocket data-frame payloads (not headers or control
// frames), TCP stream bytes and UDP datagram payloads.
type Stats struct {
	ConnsAccepted       int64 // WebSocket and TCP connections accepted
	ConnsOpen           int64 // WebSocket and TCP connections currently open (including mid-handshake)
	WSHandshakeFailures int64 // WebSocket opening handshakes that failed: malformed, timed out or abandoned
	MessagesEchoed      int64 // WebSocket data frames echoed (each fragment counts once)
	BytesIn             int64 // payload bytes received on all transports
	BytesOut            int64 // payload bytes echoed on all transports
	DatagramsEchoed     int64 // UDP datagrams echoed
	ProtocolErrors      int64 // WebSocket protocol violations answered with a close frame (1002, 1007, 1009)
	IOErrors            int64 // reads or writes that failed other than by orderly close: resets, idle timeouts, UDP errors
}

// counters backs Stats; updated with atomics from every connection goroutine.
type counters struct {
	connsAccepted       atomic.Int64
	connsOpen           atomic.Int64
	wsHandshakeFailures atomic.Int64
	messagesEchoed      atomic.Int64
	bytesIn             atomic.Int64
	bytesOut            atomic.Int64
	datagramsEchoed     atomic.Int64
	protocolErrors      atomic.Int64
	ioErrors            atomic.Int64
}

// Server is a running reference server. It owns one listener per enabled
// transport and every connection accepted on them.
type Server struct {
	cfg Config // defaults applied

	wsLn    net.Listener // nil if WebSocket is off
	tcpLn   net.Listener // nil if TCP is off
	udpConn *net.UDPConn // nil if UDP is off

	upgrader ws.Upgrader

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{} // open WebSocket and TCP connections

	wg        sync.WaitGroup // every goroutine Serve started, directly or not
	closeOnce sync.Once
	closeErr  error

	st counters
}

// Serve binds a listener for every transport enabled in cfg, synchronously, so
// that the bound addresses are known when it returns, then serves them in
// background goroutines until Close. If any listener cannot be bound, the ones
// already bound are closed and the error is returned.
func Serve(cfg Config) (*Server, error) {
	if cfg.WS == "" && cfg.TCP == "" && cfg.UDP == "" {
		return nil, ErrNoTransport
	}
	switch {
	case cfg.MaxFrame < 0:
		return nil, fmt.Errorf("targets: MaxFrame %d is negative", cfg.MaxFrame)
	case cfg.HandshakeTimeout < 0:
		return nil, fmt.Errorf("targets: HandshakeTimeout %v is negative", cfg.HandshakeTimeout)
	case cfg.IdleTimeout < 0:
		return nil, fmt.Errorf("targets: IdleTimeout %v is negative", cfg.IdleTimeout)
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}

	s := &Server{cfg: cfg, conns: make(map[*conn]struct{})}
	var err error
	if cfg.WS != "" {
		s.wsLn, err = net.Listen("tcp", cfg.WS)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("targets: websocket listen: %w", err)
		}
	}
	if cfg.TCP != "" {
		s.tcpLn, err = net.Listen("tcp", cfg.TCP)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("targets: tcp listen: %w", err)
		}
	}
	if cfg.UDP != "" {
		addr, rerr := net.ResolveUDPAddr("udp", cfg.UDP)
		if rerr == nil {
			s.udpConn, rerr = net.ListenUDP("udp", addr)
		}
		if rerr != nil {
			s.closeListeners()
			return nil, fmt.Errorf("targets: udp listen: %w", rerr)
		}
		// Best effort: bigger kernel buffers drop fewer datagrams in bursts.
		_ = s.udpConn.SetReadBuffer(udpSocketBuffer)
		_ = s.udpConn.SetWriteBuffer(udpSocketBuffer)
	}

	if s.wsLn != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.wsLn, "websocket", s.serveWS)
	}
	if s.tcpLn != nil {
		s.wg.Add(1)
		go s.acceptLoop(s.tcpLn, "tcp", s.serveTCP)
	}
	if s.udpConn != nil {
		s.wg.Add(1)
		go s.serveUDP()
	}
	return s, nil
}

// WSAddr returns the WebSocket listener's bound address, e.g. "127.0.0.1:45678",
// or "" if WebSocket is off.
func (s *Server) WSAddr() string { return lnAddr(s.wsLn) }

// TCPAddr returns the TCP listener's bound address, or "" if TCP is off.
func (s *Server) TCPAddr() string { return lnAddr(s.tcpLn) }

// UDPAddr returns the UDP socket's bound address, or "" if UDP is off.
func (s *Server) UDPAddr() string {
	if s.udpConn == nil {
		return ""
	}
	return s.udpConn.LocalAddr().String()
}

// URL returns a URL a local client can dial for transport "ws", "tcp" or
// "udp": "ws://127.0.0.1:port/", "tcp://127.0.0.1:port", "udp://127.0.0.1:port".
// A wildcard listen address (":0", "0.0.0.0", "[::]") is given as 127.0.0.1.
// It returns "" for an unknown or disabled transport.
func (s *Server) URL(transport string) string {
	var addr string
	switch transport {
	case "ws":
		addr = s.WSAddr()
	case "tcp":
		addr = s.TCPAddr()
	case "udp":
		addr = s.UDPAddr()
	}
	if addr == "" {
		return ""
	}
	addr = dialable(addr)
	if transport == "ws" {
		return "ws://" + addr + "/"
	}
	return transport + "://" + addr
}

// Stats returns a snapshot of the counters. Counters are read one by one, so a
// snapshot taken under load is not atomic as a whole.
func (s *Server) Stats() Stats {
	return Stats{
		ConnsAccepted:       s.st.connsAccepted.Load(),
		ConnsOpen:           s.st.connsOpen.Load(),
		WSHandshakeFailures: s.st.wsHandshakeFailures.Load(),
		MessagesEchoed:      s.st.messagesEchoed.Load(),
		BytesIn:             s.st.bytesIn.Load(),
		BytesOut:            s.st.bytesOut.Load(),
		DatagramsEchoed:     s.st.datagramsEchoed.Load(),
		ProtocolErrors:      s.st.protocolErrors.Load(),
		IOErrors:            s.st.ioErrors.Load(),
	}
}

// Close closes the listeners and every open connection, upgraded WebSocket
// connections included, and waits until every goroutine the server started
// has returned. It returns the first error from closing a listener; calling it
// again returns the same error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.closeErr = s.closeListeners()
		for c := range s.conns {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s.closeErr
}

// closeListeners closes every bound listener and returns the first error.
func (s *Server) closeListeners() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil && !errors.Is(err, net.ErrClosed) {
			first = err
		}
	}
	if s.wsLn != nil {
		keep(s.wsLn.Close())
	}
	if s.tcpLn != nil {
		keep(s.tcpLn.Close())
	}
	if s.udpConn != nil {
		keep(s.udpConn.Close())
	}
	return first
}

// logf forwards a rare event to Config.Logf, if set.
func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// acceptLoop accepts connections on ln and runs handle on each in its own
// goroutine until ln is closed. Temporary failures such as running out of file
// descriptors are logged and retried with a backoff from 5 ms to 1 s.
func (s *Server) acceptLoop(ln net.Listener, name string, handle func(*conn)) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			s.logf("targets: %s accept: %v; retrying in %v", name, err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := &conn{nc: nc}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.st.connsAccepted.Add(1)
		s.st.connsOpen.Add(1)
		go func() {
			defer s.release(c)
			handle(c)
		}()
	}
}

// release closes c and forgets it; the last thing a connection goroutine does.
func (s *Server) release(c *conn) {
	_ = c.nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.st.connsOpen.Add(-1)
	s.wg.Done()
}

// ioFailed counts err unless it is an orderly end: the peer closed (EOF) or the
// server is closing.
func (s *Server) ioFailed(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	s.st.ioErrors.Add(1)
}

// conn is one accepted WebSocket or TCP connection. Its Read and Write refresh
// the idle deadline when one is set, so it can sit under a bufio.Reader.
type conn struct {
	nc   net.Conn
	idle time.Duration // 0 = no idle deadline (also during the WebSocket handshake)
}

// Read reads from the connection, first pushing the read deadline idle ahead.
func (c *conn) Read(p []byte) (int, error) {
	if c.idle > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.nc.Read(p)
}

// Write writes to the connection, first pushing the write deadline idle ahead.
func (c *conn) Write(p []byte) (int, error) {
	if c.idle > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.idle))
	}
	return c.nc.Write(p)
}

// lingerClose shuts the write side (so that what was written, such as a close
// frame, is delivered with a FIN) and reads and discards input for up to
// closeLinger or until the peer closes. Closing with unread input would make
// the kernel send a reset, which can destroy the close frame before the peer
// reads it. scratch is a buffer to read into; nil allocates one.
func (c *conn) lingerClose(scratch []byte) {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
	if len(scratch) == 0 {
		scratch = make([]byte, 512)
	}
	for {
		if _, err := c.nc.Read(scratch); err != nil {
			return
		}
	}
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// lnAddr returns ln's address as a string, or "" for a nil listener.
func lnAddr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// dialable replaces a wildcard host in a host:port address with 127.0.0.1.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
