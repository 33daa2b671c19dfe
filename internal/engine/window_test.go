package engine_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/wire"
)

// Tests that every counter of the measured window counts only the window's
// messages, the warm-up's apart, and that the counters agree with each
// other (late never more than lost), on both engines, checked against what
// the test's own server did.

// dupUDP is a UDP echo server that sends every nth datagram back twice and
// keeps the intended send time of each one it doubled.
type dupUDP struct {
	addr string
	mu   sync.Mutex
	dups []int64 // intended ns of the messages doubled
}

func startDupUDP(t *testing.T, nth int) *dupUDP {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &dupUDP{addr: pc.LocalAddr().String()}
	go func() {
		buf := make([]byte, 65536)
		n := 0
		for {
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var h wire.Header
			probe := h.Decode(buf[:m]) != nil || h.Flags&wire.FlagProbe != 0
			_, _ = pc.WriteTo(buf[:m], from)
			if probe {
				continue
			}
			if n++; n%nth == 0 {
				s.mu.Lock()
				s.dups = append(s.dups, h.Intended)
				s.mu.Unlock()
				_, _ = pc.WriteTo(buf[:m], from)
			}
		}
	}()
	return s
}

// A UDP server that doubles every 50th datagram: the window's duplicates
// are exactly the doubled messages intended in the window, the warm-up's
// the rest.
func TestWindowDuplicates(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		srv := startDupUDP(t, 50)
		p := newPlan(plan.UDP, srv.addr, "")
		p.Warmup = 600 * time.Millisecond // about 300 warm-up messages, 6 of them doubled
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkClean(t, p, c)
		checkBalance(t, c, r.h)
		srv.mu.Lock()
		var inWindow, warm int64
		for _, at := range srv.dups {
			if at >= r.tl.Start {
				inWindow++
			} else {
				warm++
			}
		}
		srv.mu.Unlock()
		if warm == 0 || inWindow == 0 {
			t.Fatalf("the server doubled %d warm-up and %d window messages: want some of each", warm, inWindow)
		}
		if got, want := c.Duplicates, inWindow; got != want {
			t.Errorf("duplicates %d, want the %d doubled messages of the window (warm-up: %d)", got, want, warm)
		}
		if got, want := c.WarmupDuplicates, warm; got != want {
			t.Errorf("warm-up duplicates %d, want %d", got, want)
		}
		if c.Lost+c.Late+c.Unexpected != 0 {
			t.Errorf("lost %d late %d unexpected %d: want 0", c.Lost, c.Late, c.Unexpected)
		}
	})
}

// delayLen32 echoes len32 frames, each held delay after it arrived.
func delayLen32(delay time.Duration) func(c net.Conn, done <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		type msg struct {
			at time.Time
			b  []byte
		}
		q := make(chan msg, 1<<14)
		go func() {
			defer close(q)
			for {
				b, err := readLen32(c)
				if err != nil {
					return
				}
				q <- msg{time.Now(), b}
			}
		}()
		for m := range q {
			select {
			case <-time.After(time.Until(m.at.Add(delay))):
			case <-done:
				return
			}
			if _, err := c.Write(m.b); err != nil {
				return
			}
		}
	}
}

// A server slower than the loss timeout: every message is lost, its reply
// late. Late is counted on the side of the window its message was on, so
// it never exceeds lost on either side (the bug: late replies to warm-up
// messages were counted in the window, late 901 against lost 600).
func TestWindowLateWithinLost(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		addr := faultServer(t, 0, delayLen32(300*time.Millisecond))
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.Timeout = 150 * time.Millisecond
		p.Warmup = 400 * time.Millisecond
		p.Phases[0].Duration = 600 * time.Millisecond
		p.Phases[0].Conns, p.Phases[0].PerConnRate = 5, 50
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkBalance(t, c, r.h)
		t.Logf("window: sent %d lost %d late %d; warm-up: sent %d lost %d late %d", c.Sent, c.Lost, c.Late, c.WarmupSent, c.WarmupLost, c.WarmupLate)
		if c.Received != 0 || c.WarmupReceived != 0 {
			t.Errorf("received %d (warm-up %d): want none, every reply is past the timeout", c.Received, c.WarmupReceived)
		}
		if c.Late == 0 || c.WarmupLate == 0 {
			t.Errorf("late %d, warm-up late %d: want some on each side", c.Late, c.WarmupLate)
		}
		if c.Late > c.Lost {
			t.Errorf("late %d > lost %d in the window", c.Late, c.Lost)
		}
		if c.WarmupLate > c.WarmupLost {
			t.Errorf("warm-up: late %d > lost %d", c.WarmupLate, c.WarmupLost)
		}
		if c.Duplicates+c.WarmupDuplicates+c.Unexpected != 0 {
			t.Errorf("duplicates %d+%d unexpected %d: want 0", c.Duplicates, c.WarmupDuplicates, c.Unexpected)
		}
	})
}

// garbageLen32 echoes len32 frames and, on each connection, sends one frame
// that is not a measurement header as soon as it starts, and another once
// the measured window has begun (window is closed then).
func garbageLen32(window <-chan struct{}) func(c net.Conn, done <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		var wmu sync.Mutex
		write := func(b []byte) error {
			wmu.Lock()
			defer wmu.Unlock()
			_, err := c.Write(b)
			return err
		}
		junk := func(s string) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...) }
		if write(junk(`{"type":"hello"}`)) != nil {
			return
		}
		go func() {
			select {
			case <-window:
				_ = write(junk(`{"type":"in the window"}`))
			case <-done:
			}
		}()
		for {
			b, err := readLen32(c)
			if err != nil {
				return
			}
			if write(b) != nil {
				return
			}
		}
	}
}

// Replies that match no message count in the window by when they arrived;
// the first few are kept, bytes and all, for the user to see.
func TestWindowUnexpectedAndRejected(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		window := make(chan struct{})
		var once sync.Once
		addr := faultServer(t, 0, garbageLen32(window))
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.Phases[0].Conns = 4
		r := driveFault(t, eng, p, func(time.Time) { once.Do(func() { close(window) }) })
		c := r.c
		checkBalance(t, c, r.h)
		conns := int64(p.Phases[0].Conns)
		if got, want := c.Unexpected, conns; got != want {
			t.Errorf("unexpected %d, want %d (one per connection in the window)", got, want)
		}
		if got, want := c.WarmupUnexpected, conns; got != want {
			t.Errorf("warm-up unexpected %d, want %d", got, want)
		}
		if got, want := c.Errors["protocol"], 2*conns; got != want {
			t.Errorf("protocol errors %d, want %d", got, want)
		}
		if c.Lost != 0 || c.Received != c.Sent {
			t.Errorf("received %d of %d, lost %d: the echo itself is sound", c.Received, c.Sent, c.Lost)
		}
		if got, want := len(r.rejected), result.MaxRejected; got != want {
			t.Fatalf("%d rejected kept, want %d (of %d)", got, want, 2*conns)
		}
		for i, x := range r.rejected {
			if x.Kind != result.RejectUnparsed || !bytes.HasPrefix(x.Bytes, []byte(`{"type":`)) || x.Length != len(x.Bytes) {
				t.Errorf("rejected %d: %+v (%q), want an unparsed JSON message kept whole", i, x, x.Bytes)
			}
			if i > 0 && x.AtNs < r.rejected[i-1].AtNs {
				t.Errorf("rejected out of order: %d at %d after %d", i, x.AtNs, r.rejected[i-1].AtNs)
			}
		}
	})
}

// foreignLen32 echoes len32 frames with the connection id in the header
// changed: well-formed replies that answer nothing sent on the connection.
func foreignLen32(c net.Conn, _ <-chan struct{}) {
	for {
		b, err := readLen32(c)
		if err != nil {
			return
		}
		if len(b) >= 4+wire.HeaderSize {
			b[4+4]++ // the connection id's first byte
		}
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

// Every reply unmatched: kept as unmatched, with a reason naming both
// connections; every message lost.
func TestWindowUnmatched(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		addr := faultServer(t, 0, foreignLen32)
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.Phases[0].Conns = 2
		p.Timeout = 200 * time.Millisecond
		r := driveFault(t, eng, p, nil)
		c := r.c
		checkBalance(t, c, r.h)
		if c.Received != 0 || c.Unexpected == 0 || c.Lost == 0 {
			t.Errorf("received %d, unexpected %d, lost %d: want none received, every reply unexpected, messages lost", c.Received, c.Unexpected, c.Lost)
		}
		if len(r.rejected) == 0 {
			t.Fatal("nothing rejected kept")
		}
		x := r.rejected[0]
		// Connection 0's replies name 1<<24, connection 1's 1<<24 + 1.
		if x.Kind != result.RejectUnmatched || !bytes.Contains([]byte(x.Reason), []byte("for connection 1677721")) || x.Length != p.Phases[0].Size {
			t.Errorf("rejected %+v: want an unmatched %d-byte reply naming connection 1677721x", x, p.Phases[0].Size)
		}
	})
}

// closingLen32 echoes len32 frames for a while, then closes the connection.
func closingLen32(after time.Duration, closed *atomic.Int64) func(c net.Conn, done <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		_ = c.SetReadDeadline(time.Now().Add(after))
		for {
			b, err := readLen32(c)
			if err != nil {
				break
			}
			if _, err := c.Write(b); err != nil {
				break
			}
		}
		closed.Add(1)
	}
}

// A target that drops every connection: the run stops as soon as none is
// left, instead of running its whole window at zero connections, and says
// so (Gone, not Interrupted).
func TestStopWhenEveryConnectionIsLost(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		var closed atomic.Int64
		addr := faultServer(t, 0, closingLen32(500*time.Millisecond, &closed))
		p := newPlan(plan.TCP, addr, plan.Len32)
		p.Phases[0].Duration = 20 * time.Second
		r := driveFault(t, eng, p, nil)
		c := r.c
		if !r.tl.Gone || r.tl.Interrupted {
			t.Fatalf("timeline %+v: want Gone and not Interrupted", r.tl)
		}
		if got, want := c.ConnsDropped, int64(p.Phases[0].Conns); got != want {
			t.Errorf("dropped %d, want every connection (%d)", got, want)
		}
		// The server closed each connection 500 ms after it opened; the
		// run must end within a second of that, not after 20 s.
		if planned := r.tl.Start + int64(p.Phases[0].Duration); r.returned > planned-int64(15*time.Second) {
			t.Errorf("run returned %s after the start, planned end %s: want it stopped early", time.Duration(r.returned), time.Duration(planned))
		}
		if r.tl.End > r.returned || r.tl.End < r.tl.Start {
			t.Errorf("window %s..%s, returned %s", time.Duration(r.tl.Start), time.Duration(r.tl.End), time.Duration(r.returned))
		}
		checkBalance(t, c, r.h)
	})
}
