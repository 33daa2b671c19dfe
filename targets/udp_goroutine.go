//go:build !linux || targets_goroutine

package targets

import (
	"errors"
	"net"
	"time"
)

// serveUDP echoes each datagram on the UDP socket back to its source address
// until the socket is closed. One goroutine reads, so datagrams from one source
// are echoed in the order they arrived: the server adds no reordering of its
// own to what the client measures.
func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, udpBufferSize)
	var lastLog time.Time
	for {
		n, from, err := s.udpConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Errors on an unconnected UDP socket are rare and usually
			// transient; pause briefly so a persistent one cannot spin.
			s.st.ioErrors.Add(1)
			if now := time.Now(); now.Sub(lastLog) >= time.Second {
				lastLog = now
				s.logf("targets: udp read: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		s.st.bytesIn.Add(int64(n))
		if _, err := s.udpConn.WriteToUDPAddrPort(buf[:n], from); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.st.ioErrors.Add(1)
			continue
		}
		s.st.datagramsEchoed.Add(1)
		s.st.bytesOut.Add(int64(n))
	}
}
