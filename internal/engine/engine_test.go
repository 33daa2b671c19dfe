package engine_test

import (
	"encoding/binary"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/wire"
	"github.com/sockbench/sockbench/targets"
)

// engines are the engines every end-to-end test runs on.
func engines() []string {
	if runtime.GOOS == "linux" {
		return []string{"goroutine", "epoll"}
	}
	return []string{"goroutine"}
}

// forEngines runs f as a subtest on each engine.
func forEngines(t *testing.T, f func(t *testing.T, eng string)) {
	for _, eng := range engines() {
		t.Run(eng, func(t *testing.T) { f(t, eng) })
	}
}

// run drives p on engine eng and returns the snapshot.
func run(t *testing.T, eng string, p *plan.Plan) (result.Counters, map[string]*result.Histogram) {
	t.Helper()
	r := driveFault(t, eng, p, nil)
	return r.c, r.h
}

func newPlan(tr plan.Transport, addr string, fr plan.Framing) *plan.Plan {
	url := string(tr) + "://" + addr
	if tr == plan.WS {
		url += "/"
	}
	return &plan.Plan{
		Name:    "test",
		Target:  plan.Target{URL: url, Transport: tr, Addr: addr},
		Framing: fr, Mode: plan.Open,
		Warmup:         200 * time.Millisecond,
		Phases:         []plan.Phase{{Name: "steady", Duration: time.Second, Conns: 20, ConnectRate: 0, PerConnRate: 50, Size: 100}},
		Timeout:        time.Second,
		ConnectTimeout: 5 * time.Second,
	}
}

// checkAccounting asserts a healthy run: every connection up, no errors,
// the planned number of messages sent, every one answered.
func checkAccounting(t *testing.T, p *plan.Plan, c result.Counters, h map[string]*result.Histogram) {
	t.Helper()
	ph := p.Phases[0]
	if got, want := c.ConnsOpened, int64(ph.Conns); got != want {
		t.Errorf("conns opened %d, want %d", got, want)
	}
	if c.ConnsFailed+c.ConnsDropped != 0 || len(c.Errors) != 0 {
		t.Errorf("failed %d dropped %d errors %v, want none", c.ConnsFailed, c.ConnsDropped, c.Errors)
	}
	want := ph.Rate() * ph.Duration.Seconds()
	if got := float64(c.Sent); got < 0.97*want || got > 1.01*want {
		t.Errorf("sent %d, want about %.0f", c.Sent, want)
	}
	if c.Received+c.Lost+c.InFlight != c.Sent {
		t.Errorf("received %d + lost %d + in flight %d != sent %d", c.Received, c.Lost, c.InFlight, c.Sent)
	}
	if c.Lost != 0 || c.InFlight != 0 || c.Duplicates+c.Late+c.Unexpected+c.Reordered != 0 {
		t.Errorf("healthy loopback run: %+v", c)
	}
	if got := h[result.Latency].Count; got != c.Received {
		t.Errorf("latency samples %d, want received %d", got, c.Received)
	}
	if got := h[result.ServiceTime].Count; got != c.Received {
		t.Errorf("service-time samples %d, want received %d", got, c.Received)
	}
	if c.WarmupSent == 0 {
		t.Errorf("no warm-up messages")
	}
}

func TestEndToEndReference(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		cases := []struct {
			name string
			tr   plan.Transport
			fr   plan.Framing
		}{
			{"ws", plan.WS, ""},
			{"tcp-len32", plan.TCP, plan.Len32},
			{"tcp-line", plan.TCP, plan.Line},
			{"tcp-raw", plan.TCP, plan.Raw},
			{"udp", plan.UDP, ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				cfg := targets.Config{}
				switch tc.tr {
				case plan.WS:
					cfg.WS = "127.0.0.1:0"
				case plan.TCP:
					cfg.TCP = "127.0.0.1:0"
				case plan.UDP:
					cfg.UDP = "127.0.0.1:0"
				}
				srv, err := targets.Serve(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Close() })
				addr := map[plan.Transport]string{plan.WS: srv.WSAddr(), plan.TCP: srv.TCPAddr(), plan.UDP: srv.UDPAddr()}[tc.tr]
				p := newPlan(tc.tr, addr, tc.fr)
				c, h := run(t, eng, p)
				checkAccounting(t, p, c, h)
				st := srv.Stats()
				switch tc.tr {
				case plan.WS:
					if got, want := st.MessagesEchoed, c.Sent+c.WarmupSent; got != want {
						t.Errorf("server echoed %d messages, client sent %d", got, want)
					}
				case plan.UDP:
					// The reachability probe is one datagram more.
					if got, want := st.DatagramsEchoed, c.Sent+c.WarmupSent+1; got != want {
						t.Errorf("server echoed %d datagrams, client sent %d (+1 probe)", got, want)
					}
				case plan.TCP:
					if got, want := st.BytesIn, c.BytesSent; got != want {
						t.Errorf("server read %d bytes, client sent %d", got, want)
					}
				}
			})
		}
	})
}

// countingEcho is a plain echo server of the test's own for each transport,
// counting the messages it echoes. The TCP one also keeps what it measured
// itself for every reply (holds).
type countingEcho struct {
	addr  string
	n     atomic.Int64
	holds holdLog
}

// holdLog is what a test server measured itself: for every reply, the
// measurement header of the message, when the server had read it and when
// it began to write the reply. From those, how long it really held the
// message (its own scheduling delay included) and how long after the
// message's intended send time its reply's write began. A reply cannot
// reach the client before its write began, so each message's latency as
// sockbench measures it is at least the latter: the test's truth, whatever
// the load.
type holdLog struct {
	mu sync.Mutex
	s  []hold
}

type hold struct {
	conn        uint32 // connection number, from the measurement header
	intended    int64  // ns on the run's clock, from the measurement header
	read, write time.Time
}

// add records that the server read msg, whose measurement header is h, at
// read and began to write its reply at write.
func (l *holdLog) add(h *wire.Header, read, write time.Time) {
	l.mu.Lock()
	l.s = append(l.s, hold{h.ConnID, h.Intended, read, write})
	l.mu.Unlock()
}

// measured returns the holds of the messages intended in tl's measured
// window (the messages whose latency sockbench reports) for which keep
// is true (every one if keep is nil).
func (l *holdLog) measured(tl engine.Timeline, keep func(hold) bool) []hold {
	l.mu.Lock()
	defer l.mu.Unlock()
	var hs []hold
	for _, h := range l.s {
		if h.intended >= tl.Start && h.intended < tl.End && (keep == nil || keep(h)) {
			hs = append(hs, h)
		}
	}
	return hs
}

// plainTCP is a len32 echo server. It holds each reply until hold(conn)
// after it read the message, conn being the connection number in the
// message's measurement header (no hold if hold is nil), and calls stall,
// if not nil, before each reply. Replies keep their order.
func plainTCP(t *testing.T, hold func(conn uint32) time.Duration, stall func()) *countingEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &countingEcho{addr: ln.Addr().String()}
	if hold == nil {
		hold = func(uint32) time.Duration { return 0 }
	}
	if stall == nil {
		stall = func() {}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go e.serveLen32(c, hold, stall)
		}
	}()
	return e
}

// serveLen32 echoes len32 frames, each held for at least hold(conn) after
// it was read, and records each hold.
func (e *countingEcho) serveLen32(c net.Conn, hold func(uint32) time.Duration, stall func()) {
	type msg struct {
		at time.Time
		b  []byte
	}
	q := make(chan msg, 1<<16)
	go func() {
		defer close(q)
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			b := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
			copy(b, hdr[:])
			if _, err := io.ReadFull(c, b[4:]); err != nil {
				return
			}
			q <- msg{time.Now(), b}
		}
	}()
	for m := range q {
		var h wire.Header
		headed := h.Decode(m.b[4:]) == nil
		stall()
		if headed {
			if d := time.Until(m.at.Add(hold(h.ConnID))); d > 0 {
				time.Sleep(d) // never early; late by whatever the machine does, which the hold records
			}
			e.holds.add(&h, m.at, time.Now())
		}
		if _, err := c.Write(m.b); err != nil {
			return
		}
		e.n.Add(1)
	}
}

func plainUDP(t *testing.T) *countingEcho {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	e := &countingEcho{addr: pc.LocalAddr().String()}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := pc.WriteTo(buf[:n], from); err == nil {
				e.n.Add(1)
			}
		}
	}()
	return e
}

func plainWS(t *testing.T) *countingEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &countingEcho{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		for {
			b, op, err := wsutil.ReadClientData(c)
			if err != nil {
				c.Close()
				return
			}
			if err := wsutil.WriteServerMessage(c, op, b); err != nil {
				return
			}
			e.n.Add(1)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close() // does not close hijacked connections
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return e
}

func TestEndToEndPlainServers(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		t.Parallel()
		cases := []struct {
			name  string
			tr    plan.Transport
			fr    plan.Framing
			start func(t *testing.T) *countingEcho
			probe int64 // extra messages the server saw: the UDP reachability probe
		}{
			{"ws", plan.WS, "", plainWS, 0},
			{"tcp", plan.TCP, plan.Len32, func(t *testing.T) *countingEcho { return plainTCP(t, nil, nil) }, 0},
			{"udp", plan.UDP, "", plainUDP, 1},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				srv := tc.start(t)
				p := newPlan(tc.tr, srv.addr, tc.fr)
				c, h := run(t, eng, p)
				checkAccounting(t, p, c, h)
				if got, want := srv.n.Load(), c.Sent+c.WarmupSent+tc.probe; got != want {
					t.Errorf("server echoed %d, client sent %d", got, want)
				}
			})
		}
	})
}

// histogramOf records ds in a histogram as sockbench's (same range, same
// precision), so that its values compare with a client histogram's.
func histogramOf(ds []time.Duration) *hdr.Histogram {
	h := result.NewHistogram()
	for _, d := range ds {
		_ = h.RecordValue(int64(d))
	}
	return h
}

// atRank is the rank-th smallest value in h (1-based), read as
// ValueAtQuantile reads a percentile: the top of its bucket.
func atRank(h *hdr.Histogram, rank int64) time.Duration {
	var n int64
	for _, b := range h.Distribution() {
		if n += b.Count; n >= rank {
			return time.Duration(b.To)
		}
	}
	return time.Duration(h.Max())
}

// truthPath is one path of a truth test, read at one rank (its median) of
// three histograms of the same messages: sockbench's latency, how long the
// server held each message (read to the start of the reply's write), and
// how long after the message's intended send time the reply's write began
// (upTo): everything up to the reply's write, the send lag, the way to the
// server and the server's hold included.
type truthPath struct {
	name            string
	lat, held, upTo time.Duration
}

// pathAt reads a truth path's figures at rank: lat is sockbench's latency
// histogram, hs the server's holds of the same messages, clk the run's
// clock (which the measurement headers read).
func pathAt(name string, lat *hdr.Histogram, hs []serverHold, clk engine.Clock, rank int64) truthPath {
	held, upTo := make([]time.Duration, len(hs)), make([]time.Duration, len(hs))
	for i, h := range hs {
		held[i], upTo[i] = h.write.Sub(h.read), h.write.Sub(clk.At(h.intended))
	}
	return truthPath{name, atRank(lat, rank), atRank(histogramOf(held), rank), atRank(histogramOf(upTo), rank)}
}

// serverHold is one message as a test server saw it: its intended send
// time (ns on the run's clock, from its measurement header), when the
// server had read it and when it began to write its reply.
type serverHold struct {
	intended    int64
	read, write time.Time
}

// Tolerances of the truth tests (TestTruthConstantDelay and
// TestBroadcastTruthDelayedRoom), which hold one path's replies back by
// truthDelay and compare the latency sockbench measured with what the
// server measured itself, on that path and on an undelayed one of the same
// run, at the same time:
//
//   - truthClockSlack: each message's latency is at least the time from its
//     intended send to the start of its reply's write (upTo), so at any rank
//     sockbench's latency is at least the server's upTo. The slack is for
//     an event loop that reads the clock once per batch of ready sockets.
//   - truthMargin: what is left, the reply's way back (the write, loopback,
//     the client's wake-up and parsing), is the same on both paths to
//     within this. The goroutine engine's wake-ups on a loaded 2-core
//     machine add milliseconds that vary from moment to moment; both paths
//     share them, being read in the same run at the same time, and so
//     cancel. What happened before the reply's write (send lag, the
//     server's own scheduling) is not in the comparison: the server
//     measured it. The margin is under half of 10% of truthDelay, so that a
//     10% error in sockbench's latency (5 ms at 50 ms) fails the test
//     either way.
const (
	truthDelay      = 50 * time.Millisecond
	truthClockSlack = 100 * time.Microsecond
	truthMargin     = 2 * time.Millisecond
)

// checkTruth checks sockbench's latency on a delayed path against the
// server's own figures, and against an undelayed path (base) of the same
// run.
func checkTruth(t *testing.T, delayed, base truthPath) {
	t.Helper()
	back, baseBack := delayed.lat-delayed.upTo, base.lat-base.upTo
	for _, p := range []truthPath{delayed, base} {
		t.Logf("%s: latency p50 %s; the server held p50 %s, began the reply's write p50 %s after the intended send (+%s)",
			p.name, p.lat, p.held, p.upTo, p.lat-p.upTo)
	}
	if delayed.held < truthDelay {
		t.Errorf("%s: the server held p50 %s, under the %s it was told: the test server is wrong", delayed.name, delayed.held, truthDelay)
	}
	for _, p := range []truthPath{delayed, base} {
		if p.lat < p.upTo-truthClockSlack {
			t.Errorf("%s: latency p50 %s, want at least the %s from the intended send to the server's write", p.name, p.lat, p.upTo)
		}
	}
	if d := back - baseBack; d > truthMargin || d < -truthMargin {
		t.Errorf("%s: latency p50 %s is %s after the server began the reply's write (p50 %s after the intended send); want %s ± %s, as on the %s path (latency p50 %s, write p50 %s)",
			delayed.name, delayed.lat, back, delayed.upTo, baseBack, truthMargin, base.name, base.lat, base.upTo)
	}
}

// A server that holds the replies on half the connections for 50 ms and
// answers the others at once (the halves are mixed over the event loops,
// which take connections in turn). On the held connections sockbench's
// latency p50 is at least the time from the intended send to the server's
// write (which the server measured, its own scheduling delay included),
// and the rest, the reply's way back, is what it is on the undelayed
// connections of the same run, within truthMargin.
//
// Both paths are in one latency histogram: every undelayed reply (a few ms
// at most) is below every held one (at least 50 ms), so the undelayed
// connections' median is the mixture's value at rank nFast/2 and the held
// ones' at rank nFast + nSlow/2; the server's figures are ranked alike.
func TestTruthConstantDelay(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		slowConn := func(conn uint32) bool { return bits.OnesCount32(conn)%2 == 0 }
		srv := plainTCP(t, func(conn uint32) time.Duration {
			if slowConn(conn) {
				return truthDelay
			}
			return 0
		}, nil)
		p := newPlan(plan.TCP, srv.addr, plan.Len32)
		p.Phases[0].Conns, p.Phases[0].PerConnRate = 20, 50
		r := driveFault(t, eng, p, nil)
		checkAccounting(t, p, r.c, r.h)
		var hs []serverHold
		var nSlow int64
		for _, h := range srv.holds.measured(r.tl, nil) {
			hs = append(hs, serverHold{h.intended, h.read, h.write})
			if slowConn(h.conn) {
				nSlow++
			}
		}
		nFast := int64(len(hs)) - nSlow
		if got, want := int64(len(hs)), r.h[result.Latency].Count; got != want || nSlow == 0 || nFast == 0 {
			t.Fatalf("the server held %d measured messages (%d on held connections), the client timed %d", got, nSlow, want)
		}
		lat, err := r.h[result.Latency].HDR()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("service p50 %s, send lag p50 %s", time.Duration(r.h[result.ServiceTime].P50), time.Duration(r.h[result.SendLag].P50))
		checkTruth(t, pathAt("held 50ms", lat, hs, r.clk, nFast+(nSlow+1)/2),
			pathAt("undelayed", lat, hs, r.clk, (nFast+1)/2))
	})
}

// A server that stalls once for 500 ms: every message scheduled during the
// stall shows it in the corrected latency. With one message in flight per
// connection (wrk2's model), the sends held back by the stall go out late,
// so service time shows the stall only for the one message per connection
// that was waiting when it began. The counts are taken from the stall as
// it happened: when it began and ended, and the intended send times of the
// messages the server read.
func TestTruthStall(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		const (
			conns      = 10
			perConn    = 100.0 // msg/s
			stallAfter = 300 * time.Millisecond
			stallFor   = 500 * time.Millisecond
			above      = 100 * time.Millisecond
		)
		var (
			stallAt    atomic.Int64 // unix ns; 0 until the measured window began
			once       sync.Once
			begin, end time.Time // the stall as it happened, set in once
		)
		// Every reply written from the stall's start on waits for its end:
		// once.Do holds back the other connections' writers until it returns.
		srv := plainTCP(t, nil, func() {
			if at := stallAt.Load(); at != 0 && time.Now().UnixNano() >= at {
				once.Do(func() {
					begin = time.Now()
					time.Sleep(stallFor)
					end = time.Now()
				})
			}
		})
		p := newPlan(plan.TCP, srv.addr, plan.Len32)
		p.Phases[0].Conns, p.Phases[0].PerConnRate, p.Phases[0].Duration = conns, perConn, 1500*time.Millisecond
		p.MaxInFlight = 1
		r := driveFault(t, eng, p, func(start time.Time) { stallAt.Store(start.Add(stallAfter).UnixNano()) })
		c, h := r.c, r.h
		if c.Sent != c.Received || c.Lost+c.InFlight != 0 {
			t.Fatalf("sent %d received %d lost %d in flight %d", c.Sent, c.Received, c.Lost, c.InFlight)
		}
		if begin.IsZero() {
			t.Fatalf("the server never stalled")
		}
		// On the run's clock: a message intended at or after the stall's
		// start is answered after its end, so one intended up to 100 ms
		// before the end waited at least 100 ms. Each connection's schedule
		// has a message every 1/perConn s: at least floor(L*perConn) of them
		// in a span of L, whatever sockbench wrote in its headers.
		b, e := begin.Sub(r.clk.Start()).Nanoseconds(), end.Sub(r.clk.Start()).Nanoseconds()
		if b < r.tl.Start || e > r.tl.End {
			t.Fatalf("the stall (%s..%s on the run's clock) is not inside the measured window (%s..%s)",
				time.Duration(b), time.Duration(e), time.Duration(r.tl.Start), time.Duration(r.tl.End))
		}
		wantLat := int64(conns * math.Floor((end.Sub(begin)-above).Seconds()*perConn))
		// At most one message per connection was in the server when the
		// stall began or was sent during it (max_inflight 1): the only ones
		// the server held that long, and so the only ones whose service
		// time can hold the stall.
		var heldLong int64
		for _, h := range srv.holds.measured(r.tl, nil) {
			if h.write.Sub(h.read) >= above {
				heldLong++
			}
		}
		lat, err := h[result.Latency].HDR()
		if err != nil {
			t.Fatal(err)
		}
		svc, err := h[result.ServiceTime].HDR()
		if err != nil {
			t.Fatal(err)
		}
		latAbove := lat.TotalCount() - countBelow(lat, int64(above))
		svcAbove := svc.TotalCount() - countBelow(svc, int64(above))
		t.Logf("stall %s; latency above %s: %d (at least %d were intended during the stall); service time above: %d (held that long by the server: %d)",
			end.Sub(begin), above, latAbove, wantLat, svcAbove, heldLong)
		if wantLat < conns {
			t.Fatalf("only %d messages were intended during the stall: nothing to check", wantLat)
		}
		if latAbove < wantLat {
			t.Errorf("latency: %d samples above %s, want at least %d (every message intended during the stall)", latAbove, above, wantLat)
		}
		if heldLong > conns {
			t.Errorf("the server held %d messages over %s, want at most one per connection (%d): the test server is wrong", heldLong, above, conns)
		}
		if svcAbove < heldLong || svcAbove > heldLong+conns {
			t.Errorf("service time: %d samples above %s, want %d (held that long by the server) to %d", svcAbove, above, heldLong, heldLong+conns)
		}
		if latAbove < 10*svcAbove {
			t.Errorf("latency shows the stall for %d messages, service time for %d: want far fewer", latAbove, svcAbove)
		}
		if got, want := time.Duration(h[result.Latency].Max), end.Sub(begin); got < want {
			t.Errorf("latency max %s, want at least the stall (%s): the message waiting when it began", got, want)
		}
	})
}

// countBelow counts the samples recorded below v.
func countBelow(h *hdr.Histogram, v int64) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.To < v {
			n += b.Count
		}
	}
	return n
}
