package targets

import (
	"bytes"
	"testing"
)

func TestUDPEcho(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{UDP: "127.0.0.1:0"})
	tests := []struct {
		name string
		size int
	}{
		{
			name: "empty",
			size: 0,
		},
		{
			name: "small",
			size: 16,
		},
		{
			name: "typical MTU",
			size: 1400,
		},
		{
			name: "8 KiB",
			size: 8 << 10,
		},
		{
			name: "largest IPv4 datagram",
			size: 65507,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, "udp", s.UDPAddr())
			msg := bytes.Repeat([]byte{byte(tt.size)}, tt.size)
			for range 3 {
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, 70000)
				n, err := c.Read(got)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[:n], msg) {
					t.Fatalf(
						"got %d bytes, want %d equal bytes",
						n, len(msg))
				}
			}
		})
	}
}

// TestUDPEchoToSource checks each datagram goes back to the socket it came from.
func TestUDPEchoToSource(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{UDP: "127.0.0.1:0"})
	a := dial(t, "udp", s.UDPAddr())
	b := dial(t, "udp", s.UDPAddr())
	for i := range 5 {
		for _, c := range []struct {
			name string
			conn interface {
				Write([]byte) (int, error)
				Read([]byte) (int, error)
			}
		}{
			{
				name: "a",
				conn: a,
			},
			{
				name: "b",
				conn: b,
			},
		} {
			msg := []byte{c.name[0], byte(i)}
			if _, err := c.conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 16)
			n, err := c.conn.Read(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:n], msg) {
				t.Fatalf(
					"socket %s got %q, want %q",
					c.name, got[:n], msg)
			}
		}
	}
}
