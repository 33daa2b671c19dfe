package targets

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
)

const (
	// hdrRoom is the space kept in front of a payload for the reply header, in
	// bytes: the largest unmasked header.
	hdrRoom = ws.MaxHeaderSize - 4
	// maxHandshakeBytes caps the HTTP upgrade request (request line and headers),
	// in bytes, so that a peer cannot make the server buffer an endless line.
	maxHandshakeBytes = 16 << 10
	// maxCloseReason is the longest close reason that fits a control frame, in bytes.
	maxCloseReason = 123
	// reasonNotUTF8 is the close reason sent with 1007 for a text message
	// that is not valid UTF-8.
	reasonNotUTF8 = "text message is not valid utf-8"
)

// errShortHeader means the buffer ends inside a frame header.
var errShortHeader = errors.New("targets: incomplete frame header")

// parseHeader decodes the frame header at the start of b in place, as
// ws.ReadHeaderBuffer would from a reader, and returns it with its length in
// bytes. It returns errShortHeader if b ends inside the header, and
// ws.ErrHeaderLengthMSB for a 64-bit length with its top bit set.
func parseHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, errShortHeader
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch length := b[1] & 0x7f; length {
	case 126:
		n += 2
	case 127:
		n += 8
	default:
		h.Length = int64(length)
	}
	if h.Masked {
		n += 4
	}
	if len(b) < n {
		return ws.Header{}, 0, errShortHeader
	}
	switch b[1] & 0x7f {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if b[2]&0x80 != 0 {
			return h, n, ws.ErrHeaderLengthMSB
		}
		h.Length = int64(binary.BigEndian.Uint64(b[2:]))
	}
	if h.Masked {
		copy(h.Mask[:], b[n-4:n])
	}
	return h, n, nil
}

// putHeader encodes an unmasked frame header for an n-byte payload so that it
// ends at len(dst), and returns where it starts. len(dst) must be at least 10.
func putHeader(dst []byte, fin bool, op ws.OpCode, n int) int {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	end := len(dst)
	switch {
	case n <= 125:
		dst[end-2], dst[end-1] = b0, byte(n)
		return end - 2
	case n <= 0xffff:
		start := end - 4
		dst[start], dst[start+1] = b0, 126
		binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
		return start
	default:
		start := end - 10
		dst[start], dst[start+1] = b0, 127
		binary.BigEndian.PutUint64(dst[start+2:], uint64(n))
		return start
	}
}

// appendHeader appends an unmasked frame header for an n-byte payload to dst.
func appendHeader(dst []byte, fin bool, op ws.OpCode, n int) []byte {
	var h [hdrRoom]byte
	return append(dst, h[putHeader(h[:], fin, op, n):]...)
}

// appendClose appends a close frame with code and reason (truncated to fit
// a control frame) to dst.
func appendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
	}
	dst = appendHeader(dst, true, ws.OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// checkClose checks the unmasked payload p of a peer's close frame. If it is
// valid it returns how many of its bytes the close reply echoes: the status
// code, without the reason (2), or nothing for an empty payload (0). If not,
// it returns the status code and reason to fail the connection with.
func checkClose(p []byte) (echo int, fail ws.StatusCode, reason string) {
	if len(p) == 0 {
		return 0, 0, ""
	}
	code, text := ws.ParseCloseFrameDataUnsafe(p)
	err := ws.CheckCloseFrameData(code, text)
	switch {
	case len(p) == 1:
		return 0, ws.StatusProtocolError, "close payload of 1 byte"
	case errors.Is(err, ws.ErrProtocolInvalidUTF8):
		return 0, ws.StatusInvalidFramePayloadData, err.Error()
	case err != nil:
		return 0, ws.StatusProtocolError, err.Error()
	case code >= 5000:
		return 0, ws.StatusProtocolError, "status code out of range"
	}
	return 2, 0, ""
}

// headersEnd returns the length of the HTTP request at the start of b, up to
// and including the blank line that ends its headers, or -1 if b holds no
// blank line yet. Bytes before from were searched already. Line ends are
// "\r\n" or "\n", as the upgrader accepts.
func headersEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j
		// A blank line: this "\n" starts the request or ends the line
		// before it, alone or after a lone "\r".
		if i == 0 || b[i-1] == '\n' || (b[i-1] == '\r' && (i == 1 || b[i-2] == '\n')) {
			return i + 1
		}
	}
	return -1
}
