package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
)

// Op is the kind of a parsed message. Only WebSocket has control messages;
// every other framing yields OpData.
type Op byte

// Message kinds.
const (
	OpData  Op = iota // a data message (WebSocket text or binary)
	OpPing            // WebSocket ping: answer with a pong carrying the payload
	OpPong            // WebSocket pong: ignore
	OpClose           // WebSocket close: the peer is closing
)

// Protocol errors from Codec.Next.
var (
	ErrTooLarge   = errors.New("wire: message larger than the maximum")
	ErrFragmented = errors.New("wire: fragmented WebSocket message (not supported by the measurement path)")
	ErrMasked     = errors.New("wire: masked WebSocket frame from server")
	ErrRsv        = errors.New("wire: WebSocket frame with reserved bits set")
	ErrOpcode     = errors.New("wire: reserved WebSocket opcode")
	ErrBadLength  = errors.New("wire: invalid length prefix")
)

// Codec frames messages on one connection. Append adds one framed message to
// dst; Next parses one message from the front of src in place and reports how
// many bytes it consumed (0 when src holds only part of a message). Payloads
// returned by Next alias src. Neither allocates.
type Codec interface {
	Append(dst, payload []byte) []byte
	Next(src []byte) (op Op, payload []byte, n int, err error)
	// Text reports whether payloads carry the header in text form.
	Text() bool
	// Overhead is the most framing bytes Append adds to one payload.
	Overhead() int
}

// Len32 frames a stream with a 4-byte big-endian length before each payload.
type Len32 struct{ Max int }

func (Len32) Text() bool    { return false }
func (Len32) Overhead() int { return 4 }

func (Len32) Append(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

func (c Len32) Next(src []byte) (Op, []byte, int, error) {
	if len(src) < 4 {
		return OpData, nil, 0, nil
	}
	n := binary.BigEndian.Uint32(src)
	if int64(n) > int64(c.Max) {
		return OpData, nil, 0, fmt.Errorf("%w: length prefix %d > %d", ErrTooLarge, n, c.Max)
	}
	if len(src) < 4+int(n) {
		return OpData, nil, 0, nil
	}
	return OpData, src[4 : 4+n], 4 + int(n), nil
}

// Line frames a stream with '\n' after each payload; payloads carry the text
// header and must not contain '\n'.
type Line struct{ Max int }

func (Line) Text() bool    { return true }
func (Line) Overhead() int { return 1 }

func (Line) Append(dst, payload []byte) []byte {
	dst = append(dst, payload...)
	return append(dst, '\n')
}

func (c Line) Next(src []byte) (Op, []byte, int, error) {
	i := bytes.IndexByte(src, '\n')
	if i < 0 {
		if len(src) > c.Max {
			return OpData, nil, 0, fmt.Errorf("%w: no newline in %d bytes", ErrTooLarge, len(src))
		}
		return OpData, nil, 0, nil
	}
	if i > c.Max {
		return OpData, nil, 0, fmt.Errorf("%w: line of %d bytes > %d", ErrTooLarge, i, c.Max)
	}
	return OpData, src[:i], i + 1, nil
}

// Raw frames a stream as fixed-size records of Size bytes with no delimiter,
// for targets that echo bytes without understanding messages.
type Raw struct{ Size int }

func (Raw) Text() bool    { return false }
func (Raw) Overhead() int { return 0 }

func (Raw) Append(dst, payload []byte) []byte { return append(dst, payload...) }

func (c Raw) Next(src []byte) (Op, []byte, int, error) {
	if len(src) < c.Size {
		return OpData, nil, 0, nil
	}
	return OpData, src[:c.Size], c.Size, nil
}

// Datagram is the identity framing of UDP: one payload per datagram, and
// src given to Next is always one whole datagram.
type Datagram struct{}

func (Datagram) Text() bool                        { return false }
func (Datagram) Overhead() int                     { return 0 }
func (Datagram) Append(dst, payload []byte) []byte { return append(dst, payload...) }
func (Datagram) Next(src []byte) (Op, []byte, int, error) {
	return OpData, src, len(src), nil
}

// WSClient frames client-to-server WebSocket messages: binary frames masked
// with a fresh key each (RFC 6455 5.3), and parses server frames, which must
// be unmasked.
type WSClient struct {
	Max        int    // largest payload accepted from the server, bytes
	TextFrames bool   // send text frames (payload in text form) instead of binary
	seed       uint64 // xorshift state for mask keys
}

// NewWSClient returns a codec whose mask keys start from seed.
func NewWSClient(max int, text bool, seed uint64) *WSClient {
	return &WSClient{Max: max, TextFrames: text, seed: seed | 1}
}

// Overhead is the largest client frame header: 2 + 8 length + 4 mask.
func (*WSClient) Overhead() int { return 14 }

// Text reports whether payloads use the text header.
func (c *WSClient) Text() bool { return c.TextFrames }

// Append adds a masked data frame carrying payload.
func (c *WSClient) Append(dst, payload []byte) []byte {
	op := ws.OpBinary
	if c.TextFrames {
		op = ws.OpText
	}
	return c.AppendFrame(dst, op, payload)
}

// AppendFrame adds a masked frame of the given opcode (pong, close, data).
func (c *WSClient) AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	c.seed ^= c.seed << 13
	c.seed ^= c.seed >> 7
	c.seed ^= c.seed << 17
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], uint32(c.seed))
	n := len(payload)
	dst = append(dst, 0x80|byte(op))
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// Next parses one server frame.
func (c *WSClient) Next(src []byte) (Op, []byte, int, error) {
	if len(src) < 2 {
		return OpData, nil, 0, nil
	}
	b0, b1 := src[0], src[1]
	if b0&0x70 != 0 {
		return OpData, nil, 0, ErrRsv
	}
	if b1&0x80 != 0 {
		return OpData, nil, 0, ErrMasked
	}
	hl := 2
	var n uint64
	switch l := b1 & 0x7f; l {
	case 126:
		if len(src) < 4 {
			return OpData, nil, 0, nil
		}
		n, hl = uint64(binary.BigEndian.Uint16(src[2:])), 4
	case 127:
		if len(src) < 10 {
			return OpData, nil, 0, nil
		}
		n, hl = binary.BigEndian.Uint64(src[2:]), 10
	default:
		n = uint64(l)
	}
	if n > uint64(c.Max) {
		return OpData, nil, 0, fmt.Errorf("%w: frame of %d bytes > %d", ErrTooLarge, n, c.Max)
	}
	if uint64(len(src)-hl) < n {
		return OpData, nil, 0, nil
	}
	end := hl + int(n)
	p := src[hl:end]
	fin := b0&0x80 != 0
	switch ws.OpCode(b0 & 0x0f) {
	case ws.OpBinary, ws.OpText:
		if !fin {
			return OpData, nil, 0, ErrFragmented
		}
		return OpData, p, end, nil
	case ws.OpContinuation:
		return OpData, nil, 0, ErrFragmented
	case ws.OpPing:
		return OpPing, p, end, nil
	case ws.OpPong:
		return OpPong, p, end, nil
	case ws.OpClose:
		return OpClose, p, end, nil
	default:
		return OpData, nil, 0, ErrOpcode
	}
}
