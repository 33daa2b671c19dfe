//go:build !linux || targets_goroutine

package targets

// serveTCP echoes bytes on c as they arrive, in chunks of up to 32 KiB (or
// MaxFrame if smaller), until the peer closes or goes idle. It knows nothing of
// framing, so len32, line and raw framing all come back intact.
func (s *Server) serveTCP(c *conn) {
	c.idle = s.cfg.IdleTimeout
	buf := make([]byte, min(tcpBufferSize, s.cfg.MaxFrame))
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.st.bytesIn.Add(int64(n))
			if _, werr := c.Write(buf[:n]); werr != nil {
				s.ioFailed(werr)
				return
			}
			s.st.bytesOut.Add(int64(n))
		}
		if err != nil {
			s.ioFailed(err)
			return
		}
	}
}
