package targets

import "unicode/utf8"

// utf8Stream checks that a text message is valid UTF-8 (RFC 6455 section
// 8.1) as its payload arrives in parts, frame by frame or read by read. A
// code point may be cut anywhere between parts; the start of one cut by the
// end of a part is kept until the next. The zero value is ready for a
// message; it is 4 bytes.
type utf8Stream struct {
	tail [3]byte // the start of a code point the last part ended inside
	n    uint8   // bytes in tail
}

// write checks the next part p of the message. It reports false as soon as
// the message so far can no longer be the start of valid UTF-8; then the
// stream is spent and must be reset before the next message.
func (s *utf8Stream) write(p []byte) bool {
	if s.n > 0 {
		// Complete the code point cut by the last part, a byte at a time:
		// tail is a proper prefix of a valid encoding, so the first byte
		// that makes it full either ends a valid code point or makes it
		// invalid.
		var b [utf8.UTFMax]byte
		n := copy(b[:], s.tail[:s.n])
		for len(p) > 0 {
			b[n] = p[0]
			n++
			p = p[1:]
			if utf8.FullRune(b[:n]) {
				break
			}
		}
		if !utf8.FullRune(b[:n]) {
			s.n = uint8(copy(s.tail[:], b[:n])) // still cut
			return true
		}
		if _, size := utf8.DecodeRune(b[:n]); size != n {
			return false
		}
		s.n = 0
	}
	// p may end inside a code point: its last (at most 3) bytes after the
	// last byte that is not a continuation byte, if they are a proper
	// prefix of a valid encoding. FullRune is false exactly for those.
	i := len(p)
	for j := len(p) - 1; j >= max(0, len(p)-(utf8.UTFMax-1)); j-- {
		if p[j]&0xc0 != 0x80 {
			if !utf8.FullRune(p[j:]) {
				i = j
			}
			break
		}
	}
	if !utf8.Valid(p[:i]) {
		return false
	}
	s.n = uint8(copy(s.tail[:], p[i:]))
	return true
}

// end reports whether the message, all of it given to write, ended on a
// whole code point, and resets s for the next message.
func (s *utf8Stream) end() bool {
	ok := s.n == 0
	*s = utf8Stream{}
	return ok
}

// check is write(p) followed, if fin, by end: the check of one frame of a
// text message.
func (s *utf8Stream) check(p []byte, fin bool) bool {
	if !s.write(p) {
		return false
	}
	return !fin || s.end()
}
