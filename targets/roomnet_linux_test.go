//go:build linux && !targets_goroutine

package targets

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/wire"
)

// len32 frames p.
func len32(p []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...)
}

// TestTCPRoomFrames: how a TCP connection is told to be len32, how room
// requests are told from echoed frames, and how bad ones end the connection
// (after the replies to what came before).
func TestTCPRoomFrames(t *testing.T) {
	t.Parallel()
	msg := func(m wire.RoomMsg) []byte { return len32(roomBytes(t, m)) }
	r := []byte("r")
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // over several reads
	header := bytes.Repeat([]byte{'S', 'B', 1, 0}, 8)
	var manyJoins, manyJoined []byte
	for i := range maxRoomsPerConn + 1 {
		room := fmt.Appendf(nil, "r%d", i)
		manyJoins = append(manyJoins, msg(wire.RoomMsg{Op: wire.RoomJoin, NS: []byte("many"), Room: room})...)
		if i < maxRoomsPerConn {
			manyJoined = append(manyJoined, msg(wire.RoomMsg{Op: wire.RoomJoined, Room: room})...)
		}
	}
	tests := []struct {
		name   string
		send   []byte
		want   []byte // the whole reply stream
		closed bool   // the server closes the connection after want
	}{
		{name: "echo op", send: msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("hi")}),
			want: msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("hi")})},
		{name: "echo op over many reads", send: msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: big}),
			want: msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: big})},
		{name: "measurement frame", send: len32(header), want: len32(header)},
		{name: "large measurement frame", send: len32(append(header, big...)), want: len32(append(header, big...))},
		{name: "unknown op echoed", send: len32([]byte("Xyz")), want: len32([]byte("Xyz"))},
		{name: "empty frame", send: len32(nil), want: len32(nil)},
		{name: "pipelined", send: bytes.Join([][]byte{
			msg(wire.RoomMsg{Op: wire.RoomJoin, NS: []byte("p"), Room: r}),
			len32([]byte("S1")),
			msg(wire.RoomMsg{Op: wire.RoomPublish, Flags: wire.PublishToSelf, NS: []byte("p"), Room: r, Payload: []byte("x")}),
			msg(wire.RoomMsg{Op: wire.RoomEcho}),
			msg(wire.RoomMsg{Op: wire.RoomLeave, NS: []byte("p"), Room: r}),
		}, nil), want: bytes.Join([][]byte{
			msg(wire.RoomMsg{Op: wire.RoomJoined, Room: r}),
			len32([]byte("S1")),
			msg(wire.RoomMsg{Op: wire.RoomDeliver, Room: r, Payload: []byte("x")}),
			msg(wire.RoomMsg{Op: wire.RoomEcho}),
			msg(wire.RoomMsg{Op: wire.RoomLeft, Room: r, Seq: 1}),
		}, nil)},
		// Not len32 (the first byte is not 0): bytes are echoed as they come.
		{name: "line framing", send: []byte("Jr\n5342010000000007\n"), want: []byte("Jr\n5342010000000007\n")},
		{name: "raw framing", send: append(header, msg(wire.RoomMsg{Op: wire.RoomJoin, Room: r})...),
			want: append(header, msg(wire.RoomMsg{Op: wire.RoomJoin, Room: r})...)},
		{name: "malformed", send: bytes.Join([][]byte{
			msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("before")}),
			len32([]byte("J\x05r")),
			msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("after")}),
		}, nil), want: msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("before")}), closed: true},
		{name: "trailing bytes", send: len32([]byte("L\x00\x01rx")), closed: true},
		{name: "room request over MaxFrame", send: []byte{0, 0x10, 0, 1, 'E'}, closed: true},
		{name: "too many rooms", send: manyJoins, want: manyJoined, closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := serve(t, Config{TCP: "127.0.0.1:0", Loops: 1})
			c := dial(t, "tcp", s.TCPAddr())
			want := tt.want
			send := tt.send
			if !tt.closed {
				end := msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("end")})
				send = append(send[:len(send):len(send)], end...)
				want = append(want[:len(want):len(want)], end...)
			}
			done := writeAsync(c, send)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read %d bytes: %v", len(want), err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes %.80q, want %d bytes %.80q", len(got), got, len(want), want)
			}
			var errs int64
			if tt.closed {
				expectEOF(t, c)
				errs = 1
			} else if err := <-done; err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.ProtocolErrors != errs {
				t.Errorf("protocol errors %d, want %d", st.ProtocolErrors, errs)
			}
		})
	}
}

// TestLen32AcrossReads: a TCP connection's room requests and echoed frames
// give the same replies however the reads cut them.
func TestLen32AcrossReads(t *testing.T) {
	t.Parallel()
	msg := func(m wire.RoomMsg) []byte { return len32(roomBytes(t, m)) }
	r := []byte("room")
	echo := bytes.Repeat([]byte("e"), 300)
	in := bytes.Join([][]byte{
		msg(wire.RoomMsg{Op: wire.RoomJoin, NS: []byte("/ns"), Room: r}),
		len32([]byte("SB-measurement-frame")),
		msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: echo}),
		len32(nil),
		msg(wire.RoomMsg{Op: wire.RoomPublish, Flags: wire.PublishToSelf, NS: []byte("/ns"), Room: r, Payload: echo}),
		msg(wire.RoomMsg{Op: wire.RoomPublish, NS: []byte("/ns"), Room: r, Payload: []byte("not to self")}),
		msg(wire.RoomMsg{Op: wire.RoomLeave, NS: []byte("/ns"), Room: r}),
	}, nil)
	want := bytes.Join([][]byte{
		msg(wire.RoomMsg{Op: wire.RoomJoined, Room: r}),
		len32([]byte("SB-measurement-frame")),
		msg(wire.RoomMsg{Op: wire.RoomEcho, Payload: echo}),
		len32(nil),
		msg(wire.RoomMsg{Op: wire.RoomDeliver, Room: r, Payload: echo}),
		msg(wire.RoomMsg{Op: wire.RoomLeft, Room: r, Seq: 2}),
	}, nil)
	for _, size := range []int{1, 2, 3, 4, 5, 7, 64, 1 << 16} {
		t.Run(fmt.Sprintf("reads of %d", size), func(t *testing.T) {
			t.Parallel()
			tl := newTestLoop(t, Config{}, kindTCPNew)
			tl.l.s.rooms.m = make(map[string]*room)
			tl.feed(in, size)
			if tl.c.kind != kindTCP32 {
				t.Fatalf("kind %d, want kindTCP32", tl.c.kind)
			}
			if got := tl.output(); !bytes.Equal(got, want) {
				t.Fatalf("got %q\nwant %q", got, want)
			}
		})
	}
}

// dialUDPRoom is a room client over UDP: its own socket, its own address.
func dialUDPRoom(t *testing.T, s *Server) *roomClient { return dialRoom(t, s, "udp", "/") }

// TestUDPRoomExpiry: a UDP member that sends nothing for the TTL is no
// longer a member (not before the TTL); one that keeps sending anything,
// a repeated join included, stays one.
func TestUDPRoomExpiry(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	s := serve(t, Config{UDP: "127.0.0.1:0", UDPMemberTTL: ttl})
	room := []byte("r")
	quiet, keeper, pub := dialUDPRoom(t, s), dialUDPRoom(t, s), dialUDPRoom(t, s)
	start := time.Now()
	quiet.joinRoom(t, room)
	keeper.joinRoom(t, room)
	if st := s.Stats(); st.Rooms != 1 || st.Members != 2 {
		t.Fatalf("rooms %d members %d, want 1 and 2", st.Rooms, st.Members)
	}
	// The keeper sends an echo or a repeated join every few milliseconds,
	// until the quiet member has expired (bounded by the clients' deadline).
	for i := 0; s.Stats().Members == 2; i++ {
		if i%2 == 0 {
			keeper.joinRoom(t, room)
		} else {
			expectNothingMore(t, keeper, "keeper")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); took < ttl {
		t.Errorf("a member expired after %v, before the TTL %v", took, ttl)
	}
	if st := s.Stats(); st.Rooms != 1 || st.Members != 1 {
		t.Fatalf("rooms %d members %d, want 1 and 1: the keeper expired", st.Rooms, st.Members)
	}
	pub.send(t, wire.RoomMsg{Op: wire.RoomPublish, Room: room, Payload: []byte("x")})
	if m, err := keeper.read(); err != nil || m.Op != wire.RoomDeliver || m.Seq != 0 {
		t.Fatalf("keeper: %q seq %d, %v; want the delivery of seq 0", byte(m.Op), m.Seq, err)
	}
	expectNothingMore(t, quiet, "expired member")
	keeper.send(t, wire.RoomMsg{Op: wire.RoomLeave, Room: room})
	if m, err := keeper.read(); err != nil || m.Op != wire.RoomLeft || m.Seq != 1 {
		t.Fatalf("keeper: %q seq %d, %v; want left at 1", byte(m.Op), m.Seq, err)
	}
	if st := s.Stats(); st.Rooms != 0 || st.Members != 0 || st.Deliveries != 1 || st.Drops != 0 {
		t.Errorf("rooms %d members %d deliveries %d drops %d, want 0, 0, 1, 0", st.Rooms, st.Members, st.Deliveries, st.Drops)
	}
	// The room has no members left: a join goes on from its sequence
	// number, not 0.
	quiet.send(t, wire.RoomMsg{Op: wire.RoomJoin, Room: room})
	if m, err := quiet.read(); err != nil || m.Op != wire.RoomJoined || m.Seq != 1 {
		t.Fatalf("rejoin: %q seq %d, %v; want joined at 1", byte(m.Op), m.Seq, err)
	}
}

// TestUDPRoomMalformed: a malformed or refused room request is ignored and
// counted as a protocol error; the sender is still served.
func TestUDPRoomMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		send []byte
	}{
		{name: "name cut short", send: []byte("J\x05r")},
		{name: "publish without fields", send: []byte("P")},
		{name: "leave cut short", send: []byte("L\x00")},
		{name: "trailing bytes", send: []byte("J\x00\x01rx")},
	}
	s := serve(t, Config{UDP: "127.0.0.1:0"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialUDPRoom(t, s)
			before := s.Stats().ProtocolErrors
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			expectNothingMore(t, c, "sender")
			if st := s.Stats(); st.ProtocolErrors != before+1 || st.Members != 0 || st.Rooms != 0 {
				t.Errorf("protocol errors %d (before %d) members %d rooms %d, want one more, 0, 0",
					st.ProtocolErrors, before, st.Members, st.Rooms)
			}
		})
	}
	t.Run("too many rooms", func(t *testing.T) {
		c := dialUDPRoom(t, s)
		before := s.Stats().ProtocolErrors
		for i := range maxRoomsPerConn {
			c.joinRoom(t, fmt.Appendf(nil, "r%d", i))
		}
		c.send(t, wire.RoomMsg{Op: wire.RoomJoin, Room: []byte("one too many")})
		expectNothingMore(t, c, "member")
		if st := s.Stats(); st.ProtocolErrors != before+1 || st.Members != maxRoomsPerConn {
			t.Errorf("protocol errors %d (before %d) members %d, want one more and %d",
				st.ProtocolErrors, before, st.Members, maxRoomsPerConn)
		}
	})
}
