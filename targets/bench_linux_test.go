//go:build linux && !targets_goroutine

package targets

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// BenchmarkLoopTextFrames measures what an event loop spends on one frame
// that lies whole in a read, without the sockets: parse its header, unmask
// its payload in place, check it (text frames are checked to be UTF-8) and
// append the echo to the loop's output. Each round copies up to 64 masked
// frames (as many whole ones as fit) into the read buffer first, as a read
// would. One op is one frame;
// binary-64 is the control, which no UTF-8 check touches.
//
//	go test -run '^$' -bench LoopTextFrames -count 6 ./targets
func BenchmarkLoopTextFrames(b *testing.B) {
	tests := []struct {
		name    string
		op      ws.OpCode
		payload []byte
	}{
		{name: "binary-64", op: ws.OpBinary, payload: bytes.Repeat([]byte("m"), 64)},
		{name: "ascii-64", op: ws.OpText, payload: asciiText(64)},
		{name: "ascii-4K", op: ws.OpText, payload: asciiText(4 << 10)},
		{name: "multibyte-4K", op: ws.OpText, payload: multibyteText(4 << 10)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			cfg, err := Config{WS: "unused"}.withDefaults()
			if err != nil {
				b.Fatal(err)
			}
			s := &Server{cfg: cfg}
			s.epoch = time.Now()
			l := &loop{s: s, rbuf: make([]byte, readBufferSize), pub: new(loopStats)}
			s.loops = []*loop{l}
			c := &conn{kind: kindWS, state: ws.StateServerSide}
			frame := ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(tt.op, true, tt.payload)))
			batch := min(64, readBufferSize/len(frame)) // whole frames that fit a read
			in := bytes.Repeat(frame, batch)
			b.SetBytes(int64(len(tt.payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				k := min(batch, b.N-done)
				buf := l.rbuf[:copy(l.rbuf, in[:k*len(frame)])]
				if got := l.frames(c, buf); got != len(buf) || c.kind != kindWS {
					b.Fatalf(
						"served %d of %d bytes, connection kind %d",
						got, len(buf), c.kind)
				}
				l.obuf = l.obuf[:0]
				done += k
			}
			b.StopTimer()
			if got, want := l.st[cMessages], int64(b.N); got != want {
				b.Fatalf(
					"%d frames echoed, want %d",
					got, want)
			}
		})
	}
}
