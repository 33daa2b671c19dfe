//go:build !linux || targets_goroutine

package targets

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// tcpBufferSize is the TCP echo read chunk, in bytes (capped by Config.MaxFrame).
const tcpBufferSize = 32 << 10

// backend is the portable server: one goroutine per connection, one read
// buffer and one write buffer per connection, no allocation per message.
type backend struct {
	wsLn    net.Listener // nil if WebSocket is off
	tcpLn   net.Listener // nil if TCP is off
	udpConn *net.UDPConn // nil if UDP is off

	upgrader ws.Upgrader

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{} // open WebSocket and TCP connections

	wg sync.WaitGroup // every goroutine start started, directly or not

	st counters
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

// start binds the listeners and starts their goroutines.
func (s *Server) start() error {
	var err error
	s.conns = make(map[*conn]struct{})
	if s.wsLn, s.tcpLn, s.udpConn, err = s.listenAll(); err != nil {
		return err
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
	return nil
}

// stats reads the counters.
func (s *Server) stats() Stats {
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

// stop closes the listeners and connections and waits for every goroutine.
func (s *Server) stop() error {
	s.mu.Lock()
	s.closed = true
	err := s.closeListeners()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
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

// defaultLoops is GOMAXPROCS; the goroutine server has no loops.
func defaultLoops() int { return runtime.GOMAXPROCS(0) }
