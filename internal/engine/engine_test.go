package engine_test

import (
	"encoding/binary"
	"io"
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

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
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
// counting the messages it echoes.
type countingEcho struct {
	addr string
	n    atomic.Int64
}

func plainTCP(t *testing.T, delay time.Duration, stallAfter, stallFor time.Duration) *countingEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &countingEcho{addr: ln.Addr().String()}
	var stallOnce sync.Once
	start := time.Now()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go e.serveLen32(c, delay, func() {
				if stallFor > 0 && time.Since(start) > stallAfter {
					stallOnce.Do(func() { time.Sleep(stallFor) })
				}
			})
		}
	}()
	return e
}

// serveLen32 echoes len32 frames, each held for delay after it arrived.
func (e *countingEcho) serveLen32(c net.Conn, delay time.Duration, stall func()) {
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
		stall()
		holdUntil(m.at.Add(delay))
		if _, err := c.Write(m.b); err != nil {
			return
		}
		e.n.Add(1)
	}
}

// holdUntil returns at t, not later: a timer to just before it, then a
// yielding spin, so that the server's hold is what the test says it is.
func holdUntil(t time.Time) {
	if d := time.Until(t) - time.Millisecond; d > 0 {
		time.Sleep(d)
	}
	for time.Now().Before(t) {
		runtime.Gosched()
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
			{"tcp", plan.TCP, plan.Len32, func(t *testing.T) *countingEcho { return plainTCP(t, 0, 0, 0) }, 0},
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

// A server that holds every reply for 5 ms must show a p50 of 5 to 6 ms.
func TestTruthConstantDelay(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		srv := plainTCP(t, 5*time.Millisecond, 0, 0)
		p := newPlan(plan.TCP, srv.addr, plan.Len32)
		p.Phases[0].Conns, p.Phases[0].PerConnRate = 10, 50
		c, h := run(t, eng, p)
		checkAccounting(t, p, c, h)
		t.Logf("latency p50 %s, service p50 %s, send lag p50 %s", time.Duration(h[result.Latency].P50), time.Duration(h[result.ServiceTime].P50), time.Duration(h[result.SendLag].P50))
		if p50 := time.Duration(h[result.Latency].P50); p50 < 5*time.Millisecond || p50 > 6*time.Millisecond {
			t.Errorf("latency p50 %s, want 5ms..6ms", p50)
		}
	})
}

// A server that stalls once for 500 ms: every message scheduled during the
// stall shows it in the corrected latency. With one message in flight per
// connection (wrk2's model), the sends held back by the stall go out late,
// so service time shows the stall only for the one message per connection
// that was waiting when it began.
func TestTruthStall(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		const (
			conns    = 10
			perConn  = 100.0 // msg/s
			stallFor = 500 * time.Millisecond
		)
		srv := plainTCP(t, 0, 700*time.Millisecond, stallFor) // 200 ms warm-up, so the stall is in the measured second
		p := newPlan(plan.TCP, srv.addr, plan.Len32)
		p.Phases[0].Conns, p.Phases[0].PerConnRate, p.Phases[0].Duration = conns, perConn, 1500*time.Millisecond
		p.MaxInFlight = 1
		c, h := run(t, eng, p)
		if c.Sent != c.Received || c.Lost+c.InFlight != 0 {
			t.Fatalf("sent %d received %d lost %d in flight %d", c.Sent, c.Received, c.Lost, c.InFlight)
		}
		lat, err := h[result.Latency].HDR()
		if err != nil {
			t.Fatal(err)
		}
		svc, err := h[result.ServiceTime].HDR()
		if err != nil {
			t.Fatal(err)
		}
		// Messages scheduled in the first 400 ms of the stall waited at least
		// 100 ms more: about conns*perConn*0.4 = 400 of them.
		latAbove := lat.TotalCount() - countBelow(lat, int64(100*time.Millisecond))
		svcAbove := svc.TotalCount() - countBelow(svc, int64(100*time.Millisecond))
		wantMin := int64(0.8 * conns * perConn * 0.4)
		if latAbove < wantMin {
			t.Errorf("latency: %d samples above 100ms, want at least %d (every message scheduled during the stall)", latAbove, wantMin)
		}
		if svcAbove > 2*conns {
			t.Errorf("service time: %d samples above 100ms, want at most %d (one per connection)", svcAbove, 2*conns)
		}
		if latAbove < 10*svcAbove {
			t.Errorf("latency shows the stall for %d messages, service time for %d: want far fewer", latAbove, svcAbove)
		}
		if time.Duration(h[result.Latency].Max) < 400*time.Millisecond {
			t.Errorf("latency max %s, want the stall", time.Duration(h[result.Latency].Max))
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
