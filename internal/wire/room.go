package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The reference room protocol (docs/broadcast-design.md): one message per
// WebSocket binary frame, TCP len32 frame or UDP datagram, whose first byte
// is the op. Strings are a length byte and the bytes; integers are
// big-endian. Clients send join, leave, publish and echo; the reference
// server answers joined, left, deliver and echo. The room sequence numbers
// in joined, left and deliver let a client account for every delivery
// exactly while members come and go.

// RoomOp is the first byte of a room protocol message.
type RoomOp byte

// Room protocol ops.
const (
	RoomJoin    RoomOp = 'J' // client: join ns/room
	RoomJoined  RoomOp = 'j' // server: the member receives room sequence numbers from From on
	RoomLeave   RoomOp = 'L' // client: leave ns/room
	RoomLeft    RoomOp = 'l' // server: the member receives none from Until on
	RoomPublish RoomOp = 'P' // client: fan Payload out to the room
	RoomDeliver RoomOp = 'D' // server: one delivery of a publish, numbered Seq in its room
	RoomEcho    RoomOp = 'E' // either way: Payload echoed back to the sender
)

// PublishToSelf is the publish flag that delivers to the publisher too, if
// it is a member (Socket.IO's io.to(room); without it, socket.to(room)).
const PublishToSelf = 0x01

// RoomMsg is one room protocol message. Which fields are set depends on Op:
//
//	J, L: NS, Room            j: Room, Seq (from)     l: Room, Seq (until)
//	P: Flags, NS, Room, Payload                       D: Room, Seq, Payload
//	E: Payload
//
// Parsed names and payloads alias the buffer parsed.
type RoomMsg struct {
	Op      RoomOp
	Flags   byte
	NS      []byte
	Room    []byte
	Seq     uint64
	Payload []byte
}

// MaxRoomName is the longest namespace or room name, in bytes.
const MaxRoomName = 255

// Room protocol errors.
var (
	ErrRoomShort = errors.New("wire: room message cut short")
	ErrRoomOp    = errors.New("wire: unknown room message op")
	ErrRoomName  = errors.New("wire: namespace or room name longer than 255 bytes")
)

// AppendRoom appends m, encoded, to dst. Names longer than MaxRoomName are
// an error; nothing is appended then.
func AppendRoom(dst []byte, m *RoomMsg) ([]byte, error) {
	if len(m.NS) > MaxRoomName || len(m.Room) > MaxRoomName {
		return dst, ErrRoomName
	}
	dst = append(dst, byte(m.Op))
	switch m.Op {
	case RoomJoin, RoomLeave:
		dst = appendName(appendName(dst, m.NS), m.Room)
	case RoomJoined, RoomLeft:
		dst = binary.BigEndian.AppendUint64(appendName(dst, m.Room), m.Seq)
	case RoomPublish:
		dst = append(appendName(appendName(append(dst, m.Flags), m.NS), m.Room), m.Payload...)
	case RoomDeliver:
		dst = append(binary.BigEndian.AppendUint64(appendName(dst, m.Room), m.Seq), m.Payload...)
	case RoomEcho:
		dst = append(dst, m.Payload...)
	default:
		return dst[:len(dst)-1], fmt.Errorf("%w %q", ErrRoomOp, byte(m.Op))
	}
	return dst, nil
}

func appendName(dst, name []byte) []byte {
	return append(append(dst, byte(len(name))), name...)
}

// ParseRoom parses one whole message (a frame's or datagram's payload) in
// place into m, without allocating.
func ParseRoom(b []byte, m *RoomMsg) error {
	*m = RoomMsg{}
	if len(b) == 0 {
		return ErrRoomShort
	}
	m.Op, b = RoomOp(b[0]), b[1:]
	var ok bool
	switch m.Op {
	case RoomJoin, RoomLeave:
		if m.NS, b, ok = name(b); !ok {
			return ErrRoomShort
		}
		if m.Room, b, ok = name(b); !ok {
			return ErrRoomShort
		}
	case RoomJoined, RoomLeft, RoomDeliver:
		if m.Room, b, ok = name(b); !ok || len(b) < 8 {
			return ErrRoomShort
		}
		m.Seq, b = binary.BigEndian.Uint64(b), b[8:]
		if m.Op == RoomDeliver {
			m.Payload, b = b, nil
		}
	case RoomPublish:
		if len(b) < 1 {
			return ErrRoomShort
		}
		m.Flags, b = b[0], b[1:]
		if m.NS, b, ok = name(b); !ok {
			return ErrRoomShort
		}
		if m.Room, b, ok = name(b); !ok {
			return ErrRoomShort
		}
		m.Payload, b = b, nil
	case RoomEcho:
		m.Payload, b = b, nil
	default:
		return fmt.Errorf("%w %q", ErrRoomOp, byte(m.Op))
	}
	if len(b) != 0 {
		return fmt.Errorf("wire: %d bytes after a room %q message", len(b), byte(m.Op))
	}
	return nil
}

// name splits a length-prefixed name off the front of b.
func name(b []byte) (n, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, b, false
	}
	return b[1 : 1+int(b[0])], b[1+int(b[0]):], true
}
