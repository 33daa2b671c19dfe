package targets

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
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
	const (
		conns    = 100
		inFlight = 64
		size     = 64
		reply    = 2 + size // an unmasked server frame
	)
	s, err := Serve(Config{WS: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(bytes.Repeat([]byte("m"), size))))
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
