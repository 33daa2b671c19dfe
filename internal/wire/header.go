// Package wire holds what travels on the wire between sockbench and a target:
// the measurement header carried at the start of every payload, and the
// message framings (WebSocket frames, TCP len32/line/raw, UDP datagrams),
// encoded into and parsed from caller-owned buffers without allocating.
//
// The format is written up in docs/protocol.md.
package wire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
)

// HeaderSize is the size in bytes of the binary measurement header.
const HeaderSize = 32

// TextHeaderSize is the size in bytes of the header in text form (hex), used
// by line framing where payloads must not contain '\n'.
const TextHeaderSize = 2 * HeaderSize

// Magic and Version open every header.
const (
	Magic0  = 'S'
	Magic1  = 'B'
	Version = 1
)

// Header flags.
const (
	// FlagProbe marks the reachability probe sent before a run; it is not
	// counted as a message.
	FlagProbe byte = 1 << 0
)

// PadByte fills the payload after the header.
const PadByte = 'x'

// Errors from Decode.
var (
	ErrShort   = errors.New("wire: payload shorter than the measurement header")
	ErrMagic   = errors.New("wire: bad magic: not a sockbench measurement header")
	ErrVersion = errors.New("wire: unsupported header version")
)

// Header is the measurement header. Times are nanoseconds since the run's
// start on the sending process's monotonic clock, so only the process that
// sent a message can turn them into latencies.
type Header struct {
	Flags    byte
	ConnID   uint32 // connection number within the run
	Seq      uint64 // per-connection sequence number, from 0
	Intended int64  // ns: when the schedule said to send it
	Sent     int64  // ns: when it was actually handed to the kernel
}

// Put writes h in binary form into b[:HeaderSize]. Layout (big-endian):
// 'S' 'B' version flags | conn id u32 | seq u64 | intended i64 | sent i64.
func (h *Header) Put(b []byte) {
	_ = b[HeaderSize-1]
	b[0], b[1], b[2], b[3] = Magic0, Magic1, Version, h.Flags
	binary.BigEndian.PutUint32(b[4:], h.ConnID)
	binary.BigEndian.PutUint64(b[8:], h.Seq)
	binary.BigEndian.PutUint64(b[16:], uint64(h.Intended))
	binary.BigEndian.PutUint64(b[24:], uint64(h.Sent))
}

// Decode reads a binary header from the start of b.
func (h *Header) Decode(b []byte) error {
	if len(b) < HeaderSize {
		return ErrShort
	}
	if b[0] != Magic0 || b[1] != Magic1 {
		return ErrMagic
	}
	if b[2] != Version {
		return ErrVersion
	}
	h.Flags = b[3]
	h.ConnID = binary.BigEndian.Uint32(b[4:])
	h.Seq = binary.BigEndian.Uint64(b[8:])
	h.Intended = int64(binary.BigEndian.Uint64(b[16:]))
	h.Sent = int64(binary.BigEndian.Uint64(b[24:]))
	return nil
}

// PutText writes h as lowercase hex into b[:TextHeaderSize].
func (h *Header) PutText(b []byte) {
	var raw [HeaderSize]byte
	h.Put(raw[:])
	hex.Encode(b[:TextHeaderSize], raw[:])
}

// DecodeText reads a hex header from the start of b.
func (h *Header) DecodeText(b []byte) error {
	if len(b) < TextHeaderSize {
		return ErrShort
	}
	var raw [HeaderSize]byte
	if _, err := hex.Decode(raw[:], b[:TextHeaderSize]); err != nil {
		return ErrMagic
	}
	return h.Decode(raw[:])
}

// Pad fills b with PadByte; payload buffers are padded once and only their
// header bytes are rewritten per message.
func Pad(b []byte) {
	for i := range b {
		b[i] = PadByte
	}
}
