package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sockbench/sockbench/internal/wire"
)

func TestRoomRoundTrip(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte{0xab}, 64)
	for _, tc := range []struct {
		name string
		msg  wire.RoomMsg
		want []byte // encoding, or nil to check only the round trip
	}{
		{"join", wire.RoomMsg{Op: wire.RoomJoin, NS: []byte("/chat"), Room: []byte("r1")}, []byte("J\x05/chat\x02r1")},
		{"join, empty namespace", wire.RoomMsg{Op: wire.RoomJoin, Room: []byte("r1")}, []byte("J\x00\x02r1")},
		{"leave", wire.RoomMsg{Op: wire.RoomLeave, NS: []byte("n"), Room: []byte("r")}, []byte("L\x01n\x01r")},
		{"joined", wire.RoomMsg{Op: wire.RoomJoined, Room: []byte("r"), Seq: 0x0102030405060708}, []byte("j\x01r\x01\x02\x03\x04\x05\x06\x07\x08")},
		{"left", wire.RoomMsg{Op: wire.RoomLeft, Room: []byte("r"), Seq: 7}, []byte("l\x01r\x00\x00\x00\x00\x00\x00\x00\x07")},
		{"publish", wire.RoomMsg{Op: wire.RoomPublish, Flags: wire.PublishToSelf, NS: []byte("n"), Room: []byte("r"), Payload: []byte("xy")}, []byte("P\x01\x01n\x01rxy")},
		{"publish, 64 B", wire.RoomMsg{Op: wire.RoomPublish, Room: []byte("room-42"), Payload: payload}, nil},
		{"deliver", wire.RoomMsg{Op: wire.RoomDeliver, Room: []byte("r"), Seq: 1, Payload: []byte("xy")}, []byte("D\x01r\x00\x00\x00\x00\x00\x00\x00\x01xy")},
		{"deliver, empty payload", wire.RoomMsg{Op: wire.RoomDeliver, Room: []byte("r"), Seq: 2}, nil},
		{"echo", wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("hello")}, []byte("Ehello")},
		{"longest names", wire.RoomMsg{Op: wire.RoomJoin, NS: bytes.Repeat([]byte("n"), 255), Room: bytes.Repeat([]byte("r"), 255)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := wire.AppendRoom([]byte("prefix"), &tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("AppendRoom dropped what dst held: %q", b)
			}
			b = b[len("prefix"):]
			if tc.want != nil && !bytes.Equal(b, tc.want) {
				t.Errorf("encoded %q, want %q", b, tc.want)
			}
			var got wire.RoomMsg
			if err := wire.ParseRoom(b, &got); err != nil {
				t.Fatalf("ParseRoom: %v", err)
			}
			if got.Op != tc.msg.Op || got.Flags != tc.msg.Flags || got.Seq != tc.msg.Seq ||
				!bytes.Equal(got.NS, tc.msg.NS) || !bytes.Equal(got.Room, tc.msg.Room) || !bytes.Equal(got.Payload, tc.msg.Payload) {
				t.Errorf("parsed %+v, want %+v", got, tc.msg)
			}
		})
	}
}

func TestRoomErrors(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("x"), 256)
	for _, m := range []wire.RoomMsg{
		{Op: wire.RoomJoin, Room: long},
		{Op: wire.RoomPublish, NS: long},
	} {
		if b, err := wire.AppendRoom(nil, &m); !errors.Is(err, wire.ErrRoomName) || len(b) != 0 {
			t.Errorf("AppendRoom with a 256-byte name: %q, %v; want nothing, ErrRoomName", b, err)
		}
	}
	if b, err := wire.AppendRoom([]byte("keep"), &wire.RoomMsg{Op: 'Z'}); !errors.Is(err, wire.ErrRoomOp) || string(b) != "keep" {
		t.Errorf("AppendRoom with op Z: %q, %v; want dst unchanged, ErrRoomOp", b, err)
	}
	for _, tc := range []struct {
		in   string
		want error  // or nil with msg
		msg  string // substring of the error
	}{
		{"", wire.ErrRoomShort, ""},
		{"J", wire.ErrRoomShort, ""},
		{"J\x05/ch", wire.ErrRoomShort, ""},
		{"J\x00", wire.ErrRoomShort, ""},
		{"J\x00\x02r", wire.ErrRoomShort, ""},
		{"j\x01r\x00\x00", wire.ErrRoomShort, ""},
		{"D\x01r\x00\x00\x00\x00\x00\x00\x00", wire.ErrRoomShort, ""},
		{"P", wire.ErrRoomShort, ""},
		{"P\x00\x03ab", wire.ErrRoomShort, ""},
		{"Z", wire.ErrRoomOp, ""},
		{"J\x00\x01rEXTRA", nil, "5 bytes after a room"},
		{"l\x01r\x00\x00\x00\x00\x00\x00\x00\x01!", nil, "1 bytes after a room"},
	} {
		var m wire.RoomMsg
		err := wire.ParseRoom([]byte(tc.in), &m)
		switch {
		case err == nil:
			t.Errorf("ParseRoom(%q): no error", tc.in)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("ParseRoom(%q): %v, want %v", tc.in, err, tc.want)
		case tc.msg != "" && !strings.Contains(err.Error(), tc.msg):
			t.Errorf("ParseRoom(%q): %v, want it to say %q", tc.in, err, tc.msg)
		}
	}
}

func TestRoomAllocs(t *testing.T) {
	pub := wire.RoomMsg{Op: wire.RoomPublish, NS: []byte("/"), Room: []byte("room-1"), Payload: make([]byte, 64)}
	buf := make([]byte, 0, 256)
	var m wire.RoomMsg
	n := testing.AllocsPerRun(1000, func() {
		b, err := wire.AppendRoom(buf[:0], &pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := wire.ParseRoom(b, &m); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per encode and parse, want 0", n)
	}
}

// FuzzParseRoom: any input parses without panicking, and whatever parses
// encodes back to the same bytes.
func FuzzParseRoom(f *testing.F) {
	for _, s := range []string{"J\x05/chat\x02r1", "P\x01\x01n\x01rxy", "D\x01r\x00\x00\x00\x00\x00\x00\x00\x01xy", "Ehello", "l\x01r\x00\x00\x00\x00\x00\x00\x00\x07", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var m wire.RoomMsg
		if wire.ParseRoom(in, &m) != nil {
			return
		}
		out, err := wire.AppendRoom(nil, &m)
		if err != nil {
			t.Fatalf("parsed %q but cannot encode it: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("parsed %q, encoded back as %q", in, out)
		}
	})
}
