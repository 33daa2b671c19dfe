package targets

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// BenchmarkEchoWS64 measures the server's WebSocket echo capacity: 100 client
// connections each keep 64 binary frames of 64 bytes in flight, sending one
// more frame for each echo received. One op is one message echoed; msgs/s is
// the rate. The clients share the machine with the server, so the figure is a
// floor on what the server alone can do.
//
//	go test -run '^$' -bench EchoWS64 -count 3 ./targets
func BenchmarkEchoWS64(b *testing.B) {
	benchEchoWS(b, ws.OpBinary, bytes.Repeat([]byte("m"), 64))
}

// BenchmarkEchoWSText64, BenchmarkEchoWSText4K and
// BenchmarkEchoWSTextMultibyte4K are BenchmarkEchoWS64 with text frames,
// whose payloads the server checks are UTF-8: 64 and 4,096 bytes of ASCII,
// and 4,096 bytes of two-, three- and four-byte code points.
//
//	go test -run '^$' -bench Text -count 6 ./targets
func BenchmarkEchoWSText64(b *testing.B) {
	benchEchoWS(b, ws.OpText, asciiText(64))
}

func BenchmarkEchoWSText4K(b *testing.B) {
	benchEchoWS(b, ws.OpText, asciiText(4<<10))
}

func BenchmarkEchoWSTextMultibyte4K(b *testing.B) {
	benchEchoWS(b, ws.OpText, multibyteText(4<<10))
}

// asciiText returns n bytes of printable ASCII.
func asciiText(n int) []byte {
	return bytes.Repeat([]byte("sockbench "), n/10+1)[:n]
}

// multibyteText returns n bytes of valid UTF-8, mostly two-, three- and
// four-byte code points, padded with ASCII to n.
func multibyteText(n int) []byte {
	const runes = "\u00e9\u00df\u20ac\u65e5\u672c\U0001f600\u0436" // 2+2+3+3+3+4+2 bytes
	var b []byte
	for len(b)+len(runes) <= n {
		b = append(b, runes...)
	}
	return append(b, asciiText(n-len(b))...)
}

// benchEchoWS keeps 64 frames of op and payload in flight on each of 100
// client connections, sending one more for each echo received.
func benchEchoWS(b *testing.B, op ws.OpCode, payload []byte) {
	const (
		conns    = 100
		inFlight = 64
	)
	s, err := Serve(Config{WS: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(op, true, payload)))
	reply := len(appendHeader(nil, true, op, len(payload))) + len(payload) // an unmasked server frame
	window := bytes.Repeat(frame, inFlight)
	type client struct {
		c net.Conn
		r io.Reader
	}
	clients := make([]client, conns)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		c, br, _, err := ws.Dialer{}.Dial(ctx, s.URL("ws"))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i] = client{c: c, r: c}
		if br != nil {
			clients[i].r = io.MultiReader(br, c)
		}
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, cl := range clients {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cl.c.SetDeadline(time.Now().Add(time.Minute))
			sent := min(inFlight, n)
			if _, err := cl.c.Write(window[:sent*len(frame)]); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 64<<10)
			got, partial := 0, 0
			for got < n {
				k, err := cl.r.Read(buf)
				if err != nil {
					errs <- err
					return
				}
				done := (partial + k) / reply
				partial = (partial + k) % reply
				got += done
				if more := min(done, n-sent); more > 0 {
					if _, err := cl.c.Write(window[:more*len(frame)]); err != nil {
						errs <- err
						return
					}
					sent += more
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkLoopbackWriteFloor is the floor under any server's room fan-out
// on this machine: one op is one 100-byte write(2) to a loopback TCP socket,
// each to the next of 5,000 connections in turn, as a fan-out writes one
// member after another (the readers drain between rounds, untimed). No
// server can deliver to a room faster per member than this, since every
// member needs its own write; compare ns/op with a broadcast run's fan-out
// completion divided by the room's members.
//
//	go test -run '^$' -bench LoopbackWriteFloor -count 3 ./targets
func BenchmarkLoopbackWriteFloor(b *testing.B) {
	const conns = 5000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, conns)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.(*net.TCPConn)
		}
	}()
	var readers []net.Conn
	var writers []*os.File
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		readers = append(readers, c)
		s := <-accepted
		f, err := s.File() // a blocking dup: write(2) with no poller in the way
		s.Close()
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		writers = append(writers, f)
	}
	msg := bytes.Repeat([]byte("d"), 100)
	buf := make([]byte, 64<<10)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(conns, b.N-done)
		for _, f := range writers[:n] {
			if _, err := syscall.Write(int(f.Fd()), msg); err != nil {
				b.Fatal(err)
			}
		}
		done += n
		b.StopTimer()
		for _, r := range readers[:n] {
			if _, err := io.ReadFull(r, buf[:len(msg)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}
