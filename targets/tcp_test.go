package targets

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// writeAsync writes b to w in a goroutine, so the test can read the echo
// meanwhile; the returned channel yields the write's error.
func writeAsync(w io.Writer, b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(b)
		done <- err
	}()
	return done
}

func TestTCPEchoLen32Frames(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{TCP: "127.0.0.1:0"})
	sizes := []int{0, 1, 16, 100, 4096, 32 << 10, 70000}
	var stream []byte
	for i, n := range sizes {
		stream = binary.BigEndian.AppendUint32(stream, uint32(n))
		stream = append(stream, bytes.Repeat([]byte{byte('a' + i)}, n)...)
	}
	c := dial(t, "tcp", s.TCPAddr())
	done := writeAsync(c, stream)
	br := bufio.NewReader(c)
	for i, want := range sizes {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf(
				"frame %d header: %v",
				i, err)
		}
		if got := int(binary.BigEndian.Uint32(hdr[:])); got != want {
			t.Fatalf(
				"frame %d length %d, want %d",
				i, got, want)
		}
		p := make([]byte, want)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatalf(
				"frame %d payload: %v",
				i, err)
		}
		if want > 0 && (p[0] != byte('a'+i) || p[want-1] != byte('a'+i)) {
			t.Fatalf(
				"frame %d payload corrupted",
				i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTCPEchoLarge(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{TCP: "127.0.0.1:0"})
	tests := []struct {
		name   string
		writes int
		size   int
	}{
		{
			name:   "one 1 MiB write",
			writes: 1,
			size:   1 << 20,
		},
		{
			name:   "lines",
			writes: 1000,
			size:   64,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msg := make([]byte, tt.size)
			for i := range msg {
				msg[i] = byte(rand.IntN(256))
			}
			msg[len(msg)-1] = '\n'
			c := dial(t, "tcp", s.TCPAddr())
			done := writeAsync(c, bytes.Repeat(msg, tt.writes))
			got := make([]byte, tt.writes*tt.size)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, bytes.Repeat(msg, tt.writes)) {
				t.Fatal("echo differs from what was sent")
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{TCP: "127.0.0.1:0", IdleTimeout: 100 * time.Millisecond})
	c := dial(t, "tcp", s.TCPAddr())
	echoTCP(t, c, []byte("then nothing"))
	expectEOF(t, c)
}
