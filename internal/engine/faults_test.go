package engine_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/rooms"
)

// Regression tests against misbehaving targets: replies out of order, no
// replies at all, a stall at the end of the run, a target that stops reading,
// and WebSocket pings. Each target is a server of the test's own on
// 127.0.0.1:0.

// faultConnDeadline bounds every server-side connection, so that a run that
// hangs cannot hang the test binary.
const faultConnDeadline = 30 * time.Second

// faultServer listens on 127.0.0.1:0 and runs serve on every accepted
// connection in a goroutine of its own. done is closed at cleanup, before
// the connections are closed: a handler holding replies back returns on it.
// With rcvbuf > 0 the listening socket's SO_RCVBUF is set to it, and
// accepted connections inherit it (a small TCP window). Cleanup waits for
// every handler.
func faultServer(t *testing.T, rcvbuf int, serve func(c net.Conn, done <-chan struct{})) string {
	t.Helper()
	var lc net.ListenConfig
	if rcvbuf > 0 {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			wg.Add(1)
			mu.Unlock()
			_ = c.SetDeadline(time.Now().Add(faultConnDeadline))
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readLen32 reads one len32 frame (4-byte big-endian length, then the
// payload) straight from r and returns it whole, header included.
func readLen32(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

// faultRun is one run of a plan against a faulty target.
type faultRun struct {
	c  result.Counters
	h  map[string]*result.Histogram
	tl engine.Timeline
	// clk is the run's clock, which tl and the measurement headers read.
	clk engine.Clock
	// returned is when Drive returned, ns on the run clock.
	returned int64
	bc       *result.Broadcast // a broadcast plan's accounting
	rejected []result.Rejected // what the target sent that could not be used
}

// overrun is how long Drive took beyond the planned timeline: ramp,
// warm-up, measured window and the full drain (tl.End + p.Timeout).
func (r faultRun) overrun(p *plan.Plan) time.Duration {
	return time.Duration(r.returned - r.tl.End - int64(p.Timeout))
}

// driveFault probes the target, drives p on engine eng and
// returns the snapshot and the timeline (and, for a broadcast plan, the
// rooms tracker's accounting, kept as `sockbench run` keeps it). onStart, if
// not nil, is called with the wall time of the measured window's start when
// phase 0 begins.
func driveFault(t *testing.T, eng string, p *plan.Plan, onStart func(start time.Time)) faultRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := engine.Probe(ctx, p); err != nil {
		t.Fatalf("probe: %v", err)
	}
	set := metrics.NewSet(4)
	clk := engine.NewClock()
	var tr *rooms.Tracker
	stopSweep := func() {}
	if p.Broadcast != nil {
		tr = rooms.New(p, set.Win)
		stopSweep = tr.Run(clk.Now)
		defer stopSweep()
	}
	e, err := engine.New(eng, engine.Config{Plan: p, Set: set, Clock: clk, Logf: t.Logf, Rooms: tr})
	if err != nil {
		t.Fatal(err)
	}
	hooks := engine.Hooks{Phase: func(i int, ns int64) {
		if i == 0 && onStart != nil {
			onStart(clk.At(ns))
		}
	}}
	tl := engine.Drive(ctx, e, p, clk, set, hooks)
	returned := clk.Now()
	if tl.Interrupted {
		t.Fatalf("run interrupted")
	}
	stopSweep()
	c, h, err := set.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	run := faultRun{c: c, h: h, tl: tl, clk: clk, returned: returned, rejected: set.Rejected()}
	if tr != nil {
		if run.bc, err = tr.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	return run
}

// checkBalance asserts the identities every run keeps, whatever the target
// did: each measured message sent is received, lost or in flight, and each
// one received is one latency and one service-time sample.
func checkBalance(t *testing.T, c result.Counters, h map[string]*result.Histogram) {
	t.Helper()
	if c.Received+c.Lost+c.InFlight != c.Sent {
		t.Errorf("received %d + lost %d + in flight %d != sent %d", c.Received, c.Lost, c.InFlight, c.Sent)
	}
	if got, want := h[result.Latency].Count, c.Received; got != want {
		t.Errorf("latency samples: got %d, want received %d", got, want)
	}
	if got, want := h[result.ServiceTime].Count, c.Received; got != want {
		t.Errorf("service-time samples: got %d, want received %d", got, want)
	}
}

// checkClean asserts no connection failed or dropped and no error was
// counted.
func checkClean(t *testing.T, p *plan.Plan, c result.Counters) {
	t.Helper()
	if got, want := c.ConnsOpened, int64(p.Phases[0].Conns); got != want {
		t.Errorf("conns opened: got %d, want %d", got, want)
	}
	if c.ConnsFailed+c.ConnsDropped != 0 || len(c.Errors) != 0 {
		t.Errorf("failed %d, dropped %d, errors %v: want none", c.ConnsFailed, c.ConnsDropped, c.Errors)
	}
}

// reorderIdle is how long the reordering server holds an incomplete group
// before it sends it anyway (the last messages of a run).
const reorderIdle = 50 * time.Millisecond

// reorderLen32 returns a len32 handler that echoes the frames of each
// connection in groups of k, each group in reverse order: with k = 2 the
// replies of every pair of consecutive frames are swapped. An incomplete
// group is sent, reversed, after reorderIdle without a new frame.
func reorderLen32(k int) func(c net.Conn, done <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		q := make(chan []byte, 1024)
		go func() {
			defer close(q)
			for {
				b, err := readLen32(c)
				if err != nil {
					return
				}
				select {
				case q <- b:
				case <-done:
					return
				}
			}
		}()
		var held [][]byte
		flush := func() error {
			var out []byte
			for i := len(held) - 1; i >= 0; i-- {
				out = append(out, held[i]...)
			}
			held = held[:0]
			_, err := c.Write(out)
			return err
		}
		idle := time.NewTimer(time.Hour)
		defer idle.Stop()
		for {
			select {
			case b, ok := <-q:
				if !ok {
					return
				}
				held = append(held, b)
				if len(held) < k {
					idle.Reset(reorderIdle)
					continue
				}
				if flush() != nil {
					return
				}
			case <-idle.C:
				if len(held) > 0 && flush() != nil {
					return
				}
			case <-done:
				return
			}
		}
	}
}

// A TCP target that answers each group of k consecutive messages in reverse
// order: every message is still answered once, so every one is a latency
// sample, and k-1 replies of each group arrive after a reply to a later
// message (reordered).
func TestFaultReorder(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		cases := []struct {
			name string
			k    int // group size
		}{
			{"pairs", 2},
			{"quads", 4},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				addr := faultServer(t, 0, reorderLen32(tc.k))
				p := newPlan(plan.TCP, addr, plan.Len32)
				p.Phases[0].Conns, p.Phases[0].PerConnRate = 10, 100
				r := driveFault(t, eng, p, nil)
				c := r.c
				checkClean(t, p, c)
				checkBalance(t, c, r.h)
				if got, want := c.Received, c.Sent; got != want {
					t.Errorf("received %d, want every message sent (%d)", got, want)
				}
				if c.Lost != 0 || c.InFlight != 0 || c.Duplicates != 0 || c.Late != 0 || c.Unexpected != 0 {
					t.Errorf("lost %d, in flight %d, duplicates %d, late %d, unexpected %d: want 0",
						c.Lost, c.InFlight, c.Duplicates, c.Late, c.Unexpected)
				}
				// Reordering is counted in the window for measured messages
				// and apart for the warm-up's. Every full group gives k-1;
				// so does the group the server flushes when the run ends, on
				// each connection; a group across the window's start may
				// give its k-1 to either side.
				slack := int64(p.Phases[0].Conns * tc.k)
				for _, side := range []struct {
					name            string
					sent, reordered int64
				}{{"window", c.Sent, c.Reordered}, {"warm-up", c.WarmupSent, c.WarmupReordered}} {
					want := side.sent * int64(tc.k-1) / int64(tc.k)
					if side.reordered < want-slack || side.reordered > want+slack {
						t.Errorf("%s: reordered %d of %d messages, want %d±%d", side.name, side.reordered, side.sent, want, slack)
					}
					if side.reordered == 0 {
						t.Errorf("%s: no reordering counted", side.name)
					}
				}
			})
		}
	})
}

// hungLen32 reads everything and never replies.
func hungLen32(c net.Conn, _ <-chan struct{}) { _, _ = io.Copy(io.Discard, c) }

// A TCP target that reads but never replies: nothing is received, messages
// older than the loss timeout are lost, the rest are in flight when the run
// ends, and the run ends on time.
func TestFaultHungServer(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		addr := faultServer(t, 0, hungLen32)
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.Timeout = 300 * time.Millisecond
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkClean(t, p, c)
		checkBalance(t, c, r.h)
		t.Logf("sent %d, lost %d, in flight %d, unsent %d; drain %s, run ended %s after the window",
			c.Sent, c.Lost, c.InFlight, c.Unsent, time.Duration(r.tl.DrainEnd-r.tl.End), time.Duration(r.returned-r.tl.End))
		want := p.Phases[0].Rate() * p.Phases[0].Duration.Seconds()
		if got := float64(c.Sent); got < 0.97*want || got > 1.01*want {
			t.Errorf("sent %d, want about %.0f", c.Sent, want)
		}
		if c.Received != 0 || r.h[result.Latency].Count != 0 {
			t.Errorf("received %d, latency samples %d: want 0", c.Received, r.h[result.Latency].Count)
		}
		if got, want := c.Lost+c.InFlight, c.Sent; got != want {
			t.Errorf("lost + in flight: got %d, want sent %d", got, want)
		}
		if c.Lost == 0 {
			t.Errorf("lost 0: messages older than the %s timeout must be lost", p.Timeout)
		}
		// Only messages sent in the last Timeout can still be awaited.
		if limit := int64(p.Phases[0].Rate()*p.Timeout.Seconds()*1.2) + int64(p.Phases[0].Conns); c.InFlight > limit {
			t.Errorf("in flight %d, want at most %d (messages of the last %s)", c.InFlight, limit, p.Timeout)
		}
		if c.Late+c.Duplicates+c.Unexpected+c.Reordered != 0 {
			t.Errorf("anomalies with no replies: %+v", c)
		}
		if took := time.Duration(r.returned - r.tl.End); took > 2*time.Second {
			t.Errorf("run ended %s after the measured window, want under 2s", took)
		}
	})
}

// syncEchoLen32 reads one len32 frame and writes it back, one at a time,
// with no buffering beyond the kernel's: while the client does not read, the
// server does not read either.
func syncEchoLen32(c net.Conn, _ <-chan struct{}) {
	for {
		b, err := readLen32(c)
		if err != nil {
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

// A closed loop with more bytes outstanding (1024 x 16 KiB) than both
// sockets' buffers hold, against a server that only reads while it can
// write: the client must keep reading while it writes, or both sides block
// for good.
func TestFaultClosedLoopNoDeadlock(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		addr := faultServer(t, 0, syncEchoLen32)
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.Mode = plan.Closed
		p.Phases[0].Conns, p.Phases[0].PerConnRate = 1, 0
		p.Phases[0].InFlight, p.Phases[0].Size = 1024, 16384
		// A generous loss timeout: on a loaded machine a 16 MiB lockstep
		// exchange is slow, and slow is not what this test is about.
		p.Timeout = 5 * time.Second
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkClean(t, p, c)
		checkBalance(t, c, r.h)
		t.Logf("sent %d, received %d (warm-up %d), in flight %d, lost %d", c.Sent, c.Received, c.WarmupReceived, c.InFlight, c.Lost)
		// Progress, not speed: more replies than the first window's 1,024
		// means the client kept reading while it wrote, and topped up.
		if got := c.Received + c.WarmupReceived; got <= 1024 {
			t.Errorf("%d replies in all, want more than the first 1,024: the exchange stalled", got)
		}
		if got, want := c.Received, c.Sent-c.InFlight-c.Lost; got != want {
			t.Errorf("received %d, want sent - in flight - lost = %d", got, want)
		}
		if c.Lost != 0 {
			t.Errorf("lost %d, want 0", c.Lost)
		}
	})
}

// stallingLen32 echoes len32 frames until stallAt (unix ns, 0: not yet
// set), then stops replying, and reading, until the server closes.
type stallingLen32 struct{ stallAt atomic.Int64 }

func (s *stallingLen32) serve(c net.Conn, done <-chan struct{}) {
	for {
		b, err := readLen32(c)
		if err != nil {
			return
		}
		if at := s.stallAt.Load(); at != 0 && time.Now().UnixNano() >= at {
			<-done
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

// With max_inflight 1, a target that stops replying 0.8 s into the measured
// second holds every later send back until the run ends: those messages are
// unsent, not sent late, and the wait is the target's, not send lag.
func TestFaultStallMaxInFlight(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		const (
			conns      = 10
			perConn    = 100.0 // msg/s
			stallAfter = 800 * time.Millisecond
		)
		srv := &stallingLen32{}
		addr := faultServer(t, 0, srv.serve)
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.MaxInFlight = 1
		p.Timeout = 2 * time.Second
		p.Phases[0].Conns, p.Phases[0].PerConnRate = conns, perConn
		r := driveFault(t, eng, p, func(start time.Time) { srv.stallAt.Store(start.Add(stallAfter).UnixNano()) })
		c := r.c
		checkClean(t, p, c)
		checkBalance(t, c, r.h)
		lag := r.h[result.SendLag]
		t.Logf("sent %d, unsent %d, held back %d, received %d, lost %d, in flight %d; send lag p99 %s, max %s",
			c.Sent, c.Unsent, c.HeldBack, c.Received, c.Lost, c.InFlight, time.Duration(lag.P99), time.Duration(lag.Max))
		planned := p.Phases[0].Rate() * p.Phases[0].Duration.Seconds()
		if got := float64(c.Sent + c.Unsent); got < 0.98*planned || got > 1.02*planned {
			t.Errorf("sent %d + unsent %d = %.0f, want %.0f±2%%", c.Sent, c.Unsent, got, planned)
		}
		// About conns*perConn*0.2 = 200 messages were scheduled after the stall
		// began; one per connection may go out when the one it waited for is
		// counted lost.
		stalled := conns * perConn * (p.Phases[0].Duration - stallAfter).Seconds()
		if got := float64(c.Unsent); got < 0.7*stalled || got > 1.1*stalled {
			t.Errorf("unsent %d, want about %.0f (messages scheduled after the stall began)", c.Unsent, stalled)
		}
		if c.HeldBack < 0 || c.HeldBack > c.Sent {
			t.Errorf("held back %d, want 0..sent (%d)", c.HeldBack, c.Sent)
		}
		if p99 := time.Duration(lag.P99); p99 >= 50*time.Millisecond {
			t.Errorf("send lag p99 %s, want under 50ms: waiting for the target is not harness lag", p99)
		}
		if got, want := lag.Count, c.Sent; got != want {
			t.Errorf("send-lag samples: got %d, want sent %d", got, want)
		}
	})
}

// silentWS upgrades and then never reads.
func silentWS(c net.Conn, done <-chan struct{}) {
	if _, err := ws.Upgrade(c); err != nil {
		return
	}
	<-done
}

// A WebSocket target that stops reading fills every socket buffer, so every
// writer is blocked in a write when the run ends: Close must still be
// bounded for the run, not per connection (it once took ~150 ms per
// connection).
func TestFaultCloseBounded(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		addr := faultServer(t, 64<<10, silentWS)
		p := newPlan(plan.WS, addr, "")
		p.Timeout = 300 * time.Millisecond
		p.Phases[0].Conns, p.Phases[0].PerConnRate, p.Phases[0].Size = 40, 200, 16384
		// 3.2 MB/s per connection: a client socket buffer (up to 4 MB here) is
		// full after about 1.3 s.
		p.Phases[0].Duration = 2 * time.Second
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkClean(t, p, c)
		checkBalance(t, c, r.h)
		over := r.overrun(p)
		t.Logf("sent %d, unsent %d, held back %d, lost %d, in flight %d; Close %s, beyond the planned timeline %s",
			c.Sent, c.Unsent, c.HeldBack, c.Lost, c.InFlight, time.Duration(r.returned-r.tl.DrainEnd), over)
		if c.Unsent == 0 {
			t.Errorf("unsent 0: the writes never blocked, so Close was not tested against blocked writers")
		}
		if over >= time.Second {
			t.Errorf("Drive took %s beyond warm-up + duration + timeout, want under 1s", over)
		}
	})
}

// pingEvery is how often pingingWS pings each connection.
const pingEvery = 50 * time.Millisecond

// pingingWS is a WebSocket echo server that also pings every connection
// every pingEvery, with payload "ping N", and checks the pongs.
type pingingWS struct {
	echoed, pings, pongs, badPongs atomic.Int64
}

func (s *pingingWS) serve(c net.Conn, done <-chan struct{}) {
	if _, err := ws.Upgrade(c); err != nil {
		return
	}
	var wmu sync.Mutex
	write := func(f ws.Frame) error {
		wmu.Lock()
		defer wmu.Unlock()
		return ws.WriteFrame(c, f)
	}
	var sent atomic.Int64 // pings written to c
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(pingEvery)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
			case <-stop:
				return
			case <-done:
				return
			}
			n := sent.Add(1) // before the write: the pong may come back at once
			if write(ws.NewPingFrame(fmt.Appendf(nil, "ping %d", n))) != nil {
				return
			}
			s.pings.Add(1)
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	br := bufio.NewReader(c)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPong:
			var n int64
			if _, err := fmt.Sscanf(string(payload), "ping %d", &n); err != nil || n < 1 || n > sent.Load() {
				s.badPongs.Add(1)
				continue
			}
			s.pongs.Add(1)
		case ws.OpClose:
			return
		case ws.OpBinary, ws.OpText:
			if write(ws.NewFrame(h.OpCode, true, payload)) != nil {
				return
			}
			s.echoed.Add(1)
		}
	}
}

// A WebSocket target that pings every 50 ms: the client answers each ping
// with a pong carrying its payload, between its own messages, and the
// accounting stays exact.
func TestFaultPing(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		srv := &pingingWS{}
		addr := faultServer(t, 0, srv.serve)
		p := newPlan(plan.WS, addr, "")
		p.Phases[0].Conns, p.Phases[0].PerConnRate = 5, 50
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkAccounting(t, p, c, r.h)
		pings, pongs, bad := srv.pings.Load(), srv.pongs.Load(), srv.badPongs.Load()
		t.Logf("server: %d pings, %d pongs, %d bad pongs, %d echoed", pings, pongs, bad, srv.echoed.Load())
		if pongs == 0 {
			t.Errorf("no pongs")
		}
		if bad != 0 {
			t.Errorf("%d pongs did not carry the payload of a ping sent", bad)
		}
		// The client answers the latest ping; at 50 ms apart each one is
		// answered, but for a ping or two per connection at the end.
		if pongs < pings/2 {
			t.Errorf("%d pongs for %d pings, want most answered", pongs, pings)
		}
		if got, want := srv.echoed.Load(), c.Sent+c.WarmupSent; got != want {
			t.Errorf("server echoed %d messages, client sent %d", got, want)
		}
	})
}
