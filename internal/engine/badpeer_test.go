package engine_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
)

// Regression tests against a target that breaks the framing on one
// connection of several: a frame longer than the client's maximum, an
// invalid frame, half a frame and then a close, bytes that are no frame at
// all. That one connection is dropped with the right error class and its
// messages accounted; the others run on, undisturbed; the run ends on time.

// The bad-peer runs: a few connections at a modest rate for half a second.
const (
	badPeerConns = 4
	badPeerRate  = 100.0 // msg/s per connection
	// badPeerConn is which of the run's connections misbehaves: the third.
	badPeerConn = 3
	// badPeerAfter is how long into the measured window the bad connection
	// misbehaves mid-run.
	badPeerAfter = 150 * time.Millisecond
)

// badWhen is when the bad connection misbehaves.
type badWhen int

const (
	midRun      badWhen = iota // instead of the first reply due badPeerAfter into the measured window or later
	firstReply                 // instead of the first reply: the client reads it from the socket
	withUpgrade                // in the same write as the upgrade response: the client finds it read ahead with the handshake
)

// badSpec is how a bad peer misbehaves: it writes bad, then, with shut,
// closes its sending side (the client sees the end of the stream mid-frame).
type badSpec struct {
	ws   bool // WebSocket; else TCP len32
	when badWhen
	bad  []byte
	shut bool
}

// badPeer is an echo server that misbehaves once, on one connection, as its
// badSpec says, and then only reads on it until the client hangs up.
type badPeer struct {
	badSpec
	count  atomic.Int32 // connections counted towards badPeerConn
	at     atomic.Int64 // unix ns: when a midRun peer misbehaves (0: not known yet)
	echoed atomic.Int64 // replies written, on every connection
	hungUp atomic.Int64 // unix ns: when the client closed the bad connection
}

func (s *badPeer) serve(c net.Conn, _ <-chan struct{}) {
	next := func() ([]byte, error) { return readLen32(c) }
	bad := false
	if s.ws {
		var resp bytes.Buffer
		if _, err := ws.Upgrade(struct {
			io.Reader
			io.Writer
		}{c, &resp}); err != nil {
			return
		}
		// The probe's upgrade is counted first: its dial waits for this
		// response, and the run's dials come after it.
		bad = s.when != midRun && s.count.Add(1) == badPeerConn+1
		if bad && s.when == withUpgrade {
			resp.Write(s.bad)
		}
		if _, err := c.Write(resp.Bytes()); err != nil {
			return
		}
		if bad && s.when == withUpgrade {
			s.misbehave(c, false)
			return
		}
		br := bufio.NewReader(c)
		next = func() ([]byte, error) { return readWSEcho(br) }
	}
	for n := 0; ; n++ {
		b, err := next()
		if err != nil {
			return
		}
		if n == 0 && s.when == midRun {
			// The probe sends nothing: the run's connections are counted
			// at their first message.
			bad = s.count.Add(1) == badPeerConn
		}
		if bad && (s.when == firstReply || s.due()) {
			s.misbehave(c, true)
			return
		}
		s.echoed.Add(1) // before the write: the client may have it at once
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

// due reports whether a midRun peer's time to misbehave has come.
func (s *badPeer) due() bool {
	at := s.at.Load()
	return at != 0 && time.Now().UnixNano() >= at
}

// misbehave writes the bad bytes (unless they went out with the upgrade),
// shuts the sending side if asked, and reads until the client hangs up.
func (s *badPeer) misbehave(c net.Conn, write bool) {
	if write {
		if _, err := c.Write(s.bad); err != nil {
			return
		}
	}
	if s.shut {
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return
		}
	}
	_, _ = io.Copy(io.Discard, c)
	s.hungUp.Store(time.Now().UnixNano())
}

// readWSEcho reads client frames from br up to the next data frame and
// returns its echo, an unmasked server frame; a close frame ends the
// connection (io.EOF).
func readWSEcho(br *bufio.Reader) ([]byte, error) {
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return nil, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpClose:
			return nil, io.EOF
		case ws.OpBinary, ws.OpText:
			if h.Masked {
				ws.Cipher(payload, h.Mask, 0)
			}
			return ws.MustCompileFrame(ws.NewFrame(h.OpCode, true, payload)), nil
		}
	}
}

// wsBytes is a WebSocket frame with header h and payload p, written as is:
// whatever h says, p is not masked and may be shorter than h.Length.
func wsBytes(h ws.Header, p string) []byte {
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	b.WriteString(p)
	return b.Bytes()
}

// len32Bytes is a len32 frame announcing n bytes, followed by p.
func len32Bytes(n uint32, p string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), p...)
}

// A target that breaks the framing on one connection: that connection alone
// is dropped, counted by its error class (protocol for a frame the client
// rejects, closed_by_peer for the end of the stream mid-frame), with its
// awaited messages lost and its owed sends unsent; the other connections get
// their replies and are closed by sockbench at the end; the drain does not
// wait on the dead connection; and the client hangs up on the bad connection
// when it finds the fault, not at the end of the run.
func TestBadPeer(t *testing.T) {
	const (
		tooLarge = 8 << 20 // bytes: far above the client's maximum (64 KiB + 64 here)
		half     = "half a frame: fifty of the hundred bytes announced"
	)
	garbage := []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
	cases := []struct {
		name  string
		spec  badSpec
		class metrics.ErrorClass
	}{
		{"ws-too-large", badSpec{ws: true, bad: wsBytes(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: tooLarge}, "start")}, metrics.ErrProtocol},
		{"ws-rsv-bits", badSpec{ws: true, bad: wsBytes(ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpBinary, Length: 4}, "rsv1")}, metrics.ErrProtocol},
		{"ws-reserved-opcode", badSpec{ws: true, bad: wsBytes(ws.Header{Fin: true, OpCode: 0x3, Length: 4}, "op 3")}, metrics.ErrProtocol},
		{"ws-masked", badSpec{ws: true, bad: wsBytes(ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 4}, "mask")}, metrics.ErrProtocol},
		{"ws-mid-frame-close", badSpec{ws: true, bad: wsBytes(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 100}, half), shut: true}, metrics.ErrClosedByPeer},
		{"ws-garbage-first-reply", badSpec{ws: true, when: firstReply, bad: garbage}, metrics.ErrProtocol},
		{"ws-garbage-with-upgrade", badSpec{ws: true, when: withUpgrade, bad: garbage}, metrics.ErrProtocol},
		{"tcp-too-large", badSpec{bad: len32Bytes(tooLarge, "start")}, metrics.ErrProtocol},
		{"tcp-mid-frame-close", badSpec{bad: len32Bytes(100, half), shut: true}, metrics.ErrClosedByPeer},
	}
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				srv := &badPeer{badSpec: tc.spec}
				addr := faultServer(t, 0, srv.serve)
				tr, fr := plan.TCP, plan.Len32
				if srv.ws {
					tr, fr = plan.WS, ""
				}
				p := newPlan(tr, addr, fr)
				p.Warmup = 100 * time.Millisecond
				ph := &p.Phases[0]
				ph.Conns, ph.PerConnRate, ph.Duration = badPeerConns, badPeerRate, 500*time.Millisecond
				var end time.Time
				r := driveFault(t, eng, p, func(start time.Time) {
					srv.at.Store(start.Add(badPeerAfter).UnixNano())
					end = start.Add(ph.Duration)
				})
				c := r.c
				t.Logf("sent %d, unsent %d, received %d, lost %d, in flight %d; errors: %s; ramp %s, drain %s",
					c.Sent, c.Unsent, c.Received, c.Lost, c.InFlight, c.ErrorList(), time.Duration(r.tl.RampEnd), time.Duration(r.tl.DrainEnd-r.tl.End))
				checkBalance(t, c, r.h)

				// Exactly the bad connection dropped, with its class.
				if c.ConnsOpened != badPeerConns || c.ConnsFailed != 0 {
					t.Errorf("opened %d, failed %d: want %d, 0", c.ConnsOpened, c.ConnsFailed, badPeerConns)
				}
				if c.ConnsDropped != 1 || c.ConnsClosed != badPeerConns-1 {
					t.Errorf("dropped %d, closed %d: want 1, %d", c.ConnsDropped, c.ConnsClosed, badPeerConns-1)
				}
				if got, want := c.ErrorList(), tc.class.String()+" 1"; got != want {
					t.Errorf("errors: got %s, want %s", got, want)
				}

				// The others got their replies; only the bad connection's
				// messages awaited at the fault went unanswered. Every reply
				// the target wrote was counted, the bad connection's before
				// the fault included.
				perConn := badPeerRate * ph.Duration.Seconds()
				healthy := perConn * (badPeerConns - 1)
				if got := float64(c.Received); got < 0.9*healthy {
					t.Errorf("received %d, want at least 90%% of the healthy connections' %.0f", c.Received, healthy)
				}
				if got, want := c.Received+c.WarmupReceived, srv.echoed.Load(); got != want {
					t.Errorf("received %d + %d in the warm-up, want every reply the target wrote (%d)", c.Received, c.WarmupReceived, want)
				}
				if c.InFlight != 0 || float64(c.Lost) > perConn {
					t.Errorf("in flight %d, lost %d: want 0, at most %.0f (the bad connection's)", c.InFlight, c.Lost, perConn)
				}
				if n := c.Duplicates + c.Late + c.Unexpected + c.Reordered; n != 0 {
					t.Errorf("%d anomalies, want none: %+v", n, c)
				}
				// Every measured send is made or counted unsent; a
				// connection dropped before the window owes none of it.
				planned := healthy
				if srv.when == midRun {
					planned += perConn
				}
				if got := float64(c.Sent + c.Unsent); got < 0.97*planned || got > 1.02*planned {
					t.Errorf("sent %d + unsent %d = %.0f, want %.0f±3%%", c.Sent, c.Unsent, got, planned)
				}

				// The run did not wait on the dead connection.
				if drain := time.Duration(r.tl.DrainEnd - r.tl.End); drain >= p.Timeout/2 {
					t.Errorf("drain took %s, want well under the %s loss timeout", drain, p.Timeout)
				}
				if at := srv.hungUp.Load(); at == 0 || !time.Unix(0, at).Before(end) {
					t.Errorf("the client hung up on the bad connection at %v, want before the window's end %v", time.Unix(0, at), end)
				}
			})
		}
	})
}
