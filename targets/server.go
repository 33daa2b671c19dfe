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
//     A text message must be valid UTF-8 (RFC 6455 section 8.1): its frames
//     are checked as their bytes arrive, going on across fragments (a code
//     point may be cut between frames, or between reads), and the frame that
//     makes it invalid, or ends it inside a code point, is not echoed: the
//     connection fails with close 1007 (invalid frame payload data), as it
//     does for a close frame whose reason is not UTF-8. Earlier fragments of
//     the message have been echoed by then. Binary frames are not checked.
//   - TCP: bytes are echoed as they arrive, so any framing (len32, lines, raw)
//     works.
//   - UDP: each datagram is echoed back to its source address.
//
// The server is built to stay out of the measurement. On Linux it runs
// Config.Loops epoll event loops, each on its own locked OS thread, owning its
// connections outright: no goroutine, no read buffer and no lock per
// connection. A loop reads each ready socket into one read buffer of its own,
// parses WebSocket frames in place, unmasks them there and appends every reply
// from that read to one output buffer, written with one write; only a frame
// header or control frame cut by the end of a read is copied aside for the
// connection (and a text frame, below). Large binary frames are echoed as their bytes arrive, never
// buffered whole. A text frame is echoed only once all of it has been
// checked: from the read buffer if it lies there whole, else gathered
// over the reads (up to Config.MaxFrame) and echoed when it ends. The upgrade request is handed to gobwas/ws from the same
// buffer, and frames pipelined behind it are served from there too. Nothing
// is allocated per message. Elsewhere a portable goroutine-per-connection
// server with the same behaviour runs instead (it is also built on Linux with
// the tag targets_goroutine).
//
// # Slow consumers
//
// A reply that the socket does not take at once is queued on its connection,
// and the loop writes the queue when the socket is writable again. The queue
// never holds more than Config.MaxPending bytes: the loop reads from a
// connection only as much as its queue can still take (a text frame being
// gathered counting as queued already), and stops reading from it altogether
// when the queue is nearly full, until it has drained to half. (Only a text
// frame longer than MaxPending, which needs MaxFrame above it, takes the
// queue past MaxPending: it is read on while nothing else is queued.)
// TCP flow control then holds the peer's sends back, so a peer that sends
// without reading slows itself down and costs the server at most MaxPending
// bytes, while every other connection is served as usual. Nothing is dropped
// and nothing is reordered. A stalled peer is closed only by the idle timeout,
// which counts write progress as activity (WebSocket peers get close 1001).
// UDP has no queue: when the socket's send buffer is full the loop stops
// reading datagrams until it can echo the ones it holds.
//
// # Rooms
//
// On Linux (the epoll server) every transport also speaks the reference room
// protocol of internal/wire (RoomMsg; docs/broadcast-design.md). A message
// whose first byte is 'J' (join), 'L' (leave), 'P' (publish) or 'E' (echo)
// is a room request, answered with 'j', 'l', 'D' to every member, or 'E';
// every other message is echoed as above, so measurement messages ('S...')
// are unaffected. What a message is depends on the transport:
//
//   - WebSocket: a binary message, held until it is whole (up to
//     Config.MaxFrame). The namespace is the request path of the upgrade (the
//     ns field of J, L and P is ignored). A room request fragmented over
//     frames is refused with close 1003, a malformed one with close 1007, and
//     a join beyond 256 rooms on one connection with 1008.
//   - TCP: a len32 frame (4-byte big-endian length, then the payload), on a
//     connection whose first byte is 0 (a len32 frame under 16 MiB); other
//     connections (line and raw framings start with a printable byte) are
//     echoed byte for byte and have no rooms. Frames that are not room
//     requests are echoed as they arrive. The namespace is the ns field. A
//     malformed room request, one over MaxFrame, or a join beyond 256 rooms
//     closes the connection, after the replies to what came before it.
//   - UDP: a datagram. The namespace is the ns field; membership is by
//     source address, and ends after Config.UDPMemberTTL without any
//     datagram from that address. A malformed request, or a join beyond 256
//     rooms, is ignored. 'E' is echoed like any datagram.
//
// Rooms are per transport: a WebSocket, a TCP and a UDP member of the room
// of one name in one namespace are in three rooms. Each room numbers its
// publishes: 'j' carries the first room sequence number the member will
// receive, 'l' the first it will not, and 'D' its own, so that a client can
// account for every delivery while members come and go. A publish is encoded
// once and written to every member, in the room's sequence order, except the
// publisher unless it sets wire.PublishToSelf. A connection that closes, or
// starts to close, leaves its rooms.
//
// Slow consumers in rooms: a delivery that would take a WebSocket or TCP
// member's queue over Config.MaxPending is dropped, and so is one to a member
// in the middle of a large echoed frame or a fragmented message (a frame
// cannot go between its parts). UDP deliveries go out in sendmmsg batches
// from the UDP thread, which waits for room in the socket buffer as it does
// for echoes, and are not retransmitted: a datagram lost on the way is the
// client's to count. Drops are counted in Stats.Drops, written, queued or
// sent deliveries in Stats.Deliveries; a dropped delivery is one the member
// never gets, which the client counts as missing. The design's policy drops
// the oldest queued deliveries instead; this server drops the newest.
//
// Rooms need Linux: the portable goroutine server echoes room requests like
// any other message and its room counters stay zero.
package targets

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Defaults applied by Serve to zero Config fields.
const (
	// DefaultMaxFrame is the largest WebSocket frame payload accepted, in bytes (1 MiB).
	DefaultMaxFrame = 1 << 20
	// DefaultHandshakeTimeout bounds the WebSocket opening handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxPending is the per-connection bound on queued replies, in bytes (4 MiB).
	DefaultMaxPending = 4 << 20
	// MinMaxPending is the smallest MaxPending used, in bytes (64 KiB); smaller
	// values are raised to it.
	MinMaxPending = 64 << 10
	// DefaultUDPMemberTTL is how long a UDP room member stays a member
	// without sending a datagram (30 s).
	DefaultUDPMemberTTL = 30 * time.Second
)

const (
	// udpBufferSize is the UDP datagram buffer, in bytes: larger than any IPv4/IPv6 UDP payload.
	udpBufferSize = 64 << 10
	// udpSocketBuffer is the kernel socket buffer requested for the UDP socket, in bytes
	// (best effort; the kernel caps it at net.core.rmem_max / wmem_max).
	udpSocketBuffer = 4 << 20
	// closeLinger is how long a connection the server ends keeps draining
	// input after its write side is shut, so that the peer reads the close frame
	// or HTTP error instead of a reset.
	closeLinger = time.Second
	// maxAcceptBackoff caps the pause after a failed accept (for example EMFILE).
	maxAcceptBackoff = time.Second
)

// ErrNoTransport is returned by Serve when Config enables no transport.
var ErrNoTransport = errors.New("targets: no transport configured (set WS, TCP or UDP)")

// Config says which transports to serve and how defensive to be. Zero
// MaxFrame, HandshakeTimeout, Loops and MaxPending select the defaults; the
// zero Config serves nothing (Serve returns ErrNoTransport).
type Config struct {
	// WS is the listen address for WebSocket, e.g. "127.0.0.1:0"; "" = off.
	WS string
	// TCP is the listen address for TCP echo; "" = off.
	TCP string
	// UDP is the listen address for UDP echo; "" = off.
	UDP string
	// MaxFrame is the largest WebSocket data frame payload accepted, in bytes;
	// larger frames are refused with close code 1009. It also caps the TCP read
	// chunk of the portable server (32 KiB). 0 = DefaultMaxFrame (1 MiB).
	MaxFrame int
	// HandshakeTimeout bounds the whole WebSocket opening handshake, from accept
	// to the 101 response. 0 = DefaultHandshakeTimeout (10 s). On Linux it is
	// enforced by a sweep every 50 ms, so it may run up to 50 ms over.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a WebSocket or TCP connection on which nothing could be
	// read (or written) for that long; WebSocket peers get close code 1001 first.
	// 0 = no idle timeout. Enforced like HandshakeTimeout.
	IdleTimeout time.Duration
	// Loops is the number of event loops (Linux), each an epoll instance on
	// its own OS thread. 0 = GOMAXPROCS, not counting Ps reserved for other
	// event loops in the process. The portable server ignores it.
	Loops int
	// MaxPending bounds the replies queued for one connection that does not
	// read them, in bytes; see "Slow consumers" in the package doc.
	// 0 = DefaultMaxPending (4 MiB); values under MinMaxPending are raised to
	// it. The portable server ignores it (its writes block instead).
	MaxPending int
	// UDPMemberTTL is how long a UDP source address stays a member of its
	// rooms without sending any datagram; see "Rooms" in the package doc.
	// 0 = DefaultUDPMemberTTL (30 s). The portable server ignores it.
	UDPMemberTTL time.Duration
	// Logf receives rare events (accept failures, socket errors); may be nil.
	// It is never called per message or per connection.
	Logf func(format string, args ...any)
}

// withDefaults checks cfg and fills in its zero fields.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.WS == "" && cfg.TCP == "" && cfg.UDP == "" {
		return cfg, ErrNoTransport
	}
	switch {
	case cfg.MaxFrame < 0:
		return cfg, fmt.Errorf("targets: MaxFrame %d is negative", cfg.MaxFrame)
	case cfg.HandshakeTimeout < 0:
		return cfg, fmt.Errorf("targets: HandshakeTimeout %v is negative", cfg.HandshakeTimeout)
	case cfg.IdleTimeout < 0:
		return cfg, fmt.Errorf("targets: IdleTimeout %v is negative", cfg.IdleTimeout)
	case cfg.Loops < 0:
		return cfg, fmt.Errorf("targets: Loops %d is negative", cfg.Loops)
	case cfg.MaxPending < 0:
		return cfg, fmt.Errorf("targets: MaxPending %d is negative", cfg.MaxPending)
	case cfg.UDPMemberTTL < 0:
		return cfg, fmt.Errorf("targets: UDPMemberTTL %v is negative", cfg.UDPMemberTTL)
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Loops == 0 {
		cfg.Loops = defaultLoops()
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	cfg.MaxPending = max(cfg.MaxPending, MinMaxPending)
	if cfg.UDPMemberTTL == 0 {
		cfg.UDPMemberTTL = DefaultUDPMemberTTL
	}
	return cfg, nil
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
	BytesOut            int64 // payload bytes echoed on all transports (room replies and deliveries not counted, but 'E' is)
	DatagramsEchoed     int64 // UDP datagrams echoed
	ProtocolErrors      int64 // WebSocket protocol violations answered with a close frame (1002, 1003, 1007, 1008, 1009); bad TCP or UDP room requests
	IOErrors            int64 // reads or writes that failed other than by orderly close: resets, idle timeouts, UDP errors
	Rooms               int64 // rooms with at least one member now (Linux; see "Rooms")
	Members             int64 // room memberships now, summed over rooms
	Deliveries          int64 // room deliveries written, queued or (UDP) sent, one per member per publish
	Drops               int64 // room deliveries dropped: the member's queue was full, it was mid-message, or (UDP) sending failed
}

// Server is a running reference server. It owns one listener per enabled
// transport and every connection accepted on them.
type Server struct {
	cfg Config // defaults applied

	wsAddr, tcpAddr, udpAddr string // bound addresses; "" = transport off

	closeOnce sync.Once
	closeErr  error

	backend // the platform's server: event loops or goroutines
}

// Serve binds a listener for every transport enabled in cfg, synchronously, so
// that the bound addresses are known when it returns, then serves them in
// background goroutines until Close. If any listener cannot be bound, the ones
// already bound are closed and the error is returned.
func Serve(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// WSAddr returns the WebSocket listener's bound address, e.g. "127.0.0.1:45678",
// or "" if WebSocket is off.
func (s *Server) WSAddr() string { return s.wsAddr }

// TCPAddr returns the TCP listener's bound address, or "" if TCP is off.
func (s *Server) TCPAddr() string { return s.tcpAddr }

// UDPAddr returns the UDP socket's bound address, or "" if UDP is off.
func (s *Server) UDPAddr() string { return s.udpAddr }

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
// snapshot taken under load is not atomic as a whole. A reply is counted before
// it is written, so a client that has received an echo finds it counted.
func (s *Server) Stats() Stats { return s.stats() }

// Close closes the listeners and every open connection, upgraded WebSocket
// connections included, and waits until every goroutine the server started
// has returned. It returns the first error from closing a listener; calling it
// again returns the same error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.stop() })
	return s.closeErr
}

// logf forwards a rare event to Config.Logf, if set.
func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// listenAll binds every enabled transport with net's listen functions (which
// resolve addresses and set the usual socket options) and records the bound
// addresses. On failure it closes what it had bound and returns the error.
func (s *Server) listenAll() (ws, tcp net.Listener, udp *net.UDPConn, err error) {
	fail := func(what string, err error) (net.Listener, net.Listener, *net.UDPConn, error) {
		if ws != nil {
			_ = ws.Close()
		}
		if tcp != nil {
			_ = tcp.Close()
		}
		if udp != nil {
			_ = udp.Close()
		}
		return nil, nil, nil, fmt.Errorf("targets: %s listen: %w", what, err)
	}
	if s.cfg.WS != "" {
		if ws, err = net.Listen("tcp", s.cfg.WS); err != nil {
			return fail("websocket", err)
		}
		s.wsAddr = ws.Addr().String()
	}
	if s.cfg.TCP != "" {
		if tcp, err = net.Listen("tcp", s.cfg.TCP); err != nil {
			return fail("tcp", err)
		}
		s.tcpAddr = tcp.Addr().String()
	}
	if s.cfg.UDP != "" {
		addr, rerr := net.ResolveUDPAddr("udp", s.cfg.UDP)
		if rerr == nil {
			udp, rerr = net.ListenUDP("udp", addr)
		}
		if rerr != nil {
			return fail("udp", rerr)
		}
		// Best effort: bigger kernel buffers drop fewer datagrams in bursts.
		_ = udp.SetReadBuffer(udpSocketBuffer)
		_ = udp.SetWriteBuffer(udpSocketBuffer)
		s.udpAddr = udp.LocalAddr().String()
	}
	return ws, tcp, udp, nil
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
