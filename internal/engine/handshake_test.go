package engine_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
)

// answerWith is a server that reads the upgrade request and answers with
// the given bytes, then closes.
func answerWith(answer string) func(c net.Conn, done <-chan struct{}) {
	return func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		for { // the request, up to its blank line
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = c.Write([]byte(answer))
	}
}

// A failed WebSocket handshake names what the server answered; only a
// failed TCP connect is "unreachable".
func TestProbeNamesTheAnswer(t *testing.T) {
	t.Parallel()
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	httpServer := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.NotFoundHandler()}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) string
		want  []string
		class metrics.ErrorClass
	}{
		{"404 from net/http", httpServer,
			[]string{`: handshake failed: server answered "HTTP/1.1 404 Not Found"`}, metrics.ErrHandshake},
		{"503 with a body", func(t *testing.T) string {
			return faultServer(t, 0, answerWith("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"))
		}, []string{`handshake failed: server answered "HTTP/1.1 503 Service Unavailable"`}, metrics.ErrHandshake},
		{"101 without the accept key", func(t *testing.T) string {
			return faultServer(t, 0, answerWith("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
		}, []string{`server answered "HTTP/1.1 101 Switching Protocols" but`, "Sec-WebSocket-Accept"}, metrics.ErrHandshake},
		{"not HTTP", func(t *testing.T) string {
			return faultServer(t, 0, answerWith("SSH-2.0-OpenSSH_9.2\r\n"))
		}, []string{`server answered with bytes that are not HTTP: "SSH-2.0-OpenSSH_9.2\r\n" (hex 53 53 48 2d`}, metrics.ErrHandshake},
		{"closed without answering", func(t *testing.T) string {
			return faultServer(t, 0, answerWith(""))
		}, []string{"the server closed the connection without answering the upgrade request"}, metrics.ErrHandshake},
		{"refused", refused, []string{"unreachable", "connection refused"}, metrics.ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := tc.start(t)
			p := newPlan(plan.WS, addr, "")
			p.ConnectTimeout = 2 * time.Second
			err := engine.Probe(context.Background(), p)
			if err == nil {
				t.Fatal("probe passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.class != metrics.ErrRefused && strings.Contains(err.Error(), "unreachable") {
				t.Errorf("error %q: the target answered; it is not unreachable", err)
			}
			if got := metrics.Classify(err); got != tc.class {
				t.Errorf("class %s, want %s", got, tc.class)
			}
		})
	}
}

// A server that accepts the probe's upgrade and refuses every later one:
// no connection opens, each failure is a handshake error, what the server
// answered is kept, and the run stops at the end of the ramp.
func TestHandshakeRefusedMidRun(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		var n atomic.Int64
		addr := faultServer(t, 0, func(c net.Conn, done <-chan struct{}) {
			if n.Add(1) == 1 { // the probe
				_, _ = ws.Upgrade(c)
				return
			}
			answerWith("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n")(c, done)
		})
		p := newPlan(plan.WS, addr, "")
		p.Phases[0].Conns, p.Phases[0].Duration = 3, 10*time.Second
		r := driveFault(t, eng, p, nil)
		if !r.tl.Gone {
			t.Errorf("timeline %+v: want Gone", r.tl)
		}
		if got, want := r.c.Errors["handshake"], int64(3); got != want || r.c.ConnsOpened != 0 {
			t.Errorf("handshake errors %d, opened %d: want %d, 0", got, r.c.ConnsOpened, want)
		}
		if len(r.rejected) != 3 {
			t.Fatalf("%d rejected kept, want 3", len(r.rejected))
		}
		x := r.rejected[0]
		if x.Kind != result.RejectHandshake || !strings.HasPrefix(string(x.Bytes), "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n") ||
			!strings.Contains(x.Reason, `server answered "HTTP/1.1 503 Service Unavailable"`) {
			t.Errorf("rejected %+v (%q)", x, x.Bytes)
		}
	})
}

// The kind of error that Classify sees through the HandshakeError.
func TestHandshakeErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *metrics.HandshakeError
		want string
	}{
		{&metrics.HandshakeError{Err: errors.New("x"), Answer: []byte("HTTP/1.0 400 Bad Request\r\n\r\n")}, `handshake failed: server answered "HTTP/1.0 400 Bad Request"`},
		{&metrics.HandshakeError{Err: errors.New("x"), Answer: []byte("HTTP/1.1 403 Forbidden")}, `handshake failed: server answered "HTTP/1.1 403 Forbidden"`},
		{&metrics.HandshakeError{Err: errors.New("bad thing")}, "handshake failed: bad thing"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
