package sockbench_test

// Benchmarks of the per-message measurement path, done the way the goroutine
// engine does it (internal/engine/goroutine.go): write the measurement header
// into a padded payload, frame it into a reused buffer, write it, read the
// echo, parse it in place, decode the header and record the message as sent
// and received. The steady state must not allocate.
//
//	go test -run '^$' -bench . -benchtime 2s .

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/wire"
	"github.com/sockbench/sockbench/targets"
)

const (
	// payloadSize is the payload of every message in bytes, measurement
	// header included: the scenario default (scenarios.DefaultSize), which
	// also holds line framing's 64-byte text header.
	payloadSize = 64
	// maxPayload is the largest payload a codec accepts from the server, in bytes.
	maxPayload = 1 << 16
	// batch is the number of messages per write in the pipelined benchmarks.
	batch = 64
	// ioTimeout bounds every socket benchmark run, so a lost reply fails the
	// benchmark instead of hanging it.
	ioTimeout = time.Minute
)

// framing is one transport and message framing of the measurement path.
type framing struct {
	name    string // in-memory name (BenchmarkEncodeParse, TestMessagePathAllocs)
	sock    string // socket name (BenchmarkMessagePath, BenchmarkMessagePathBatch)
	network string // "ws", "tcp" or "udp": the targets.Server URL to dial
	codec   func() wire.Codec
	// echo appends to dst what the echo server sends back for one framed
	// message; nil means the bytes come back unchanged.
	echo func(dst, frame []byte) []byte
}

var framings = []framing{
	{name: "ws", sock: "ws", network: "ws", echo: wsEcho,
		codec: func() wire.Codec { return wire.NewWSClient(maxPayload, false, 1) }},
	{name: "len32", sock: "tcp-len32", network: "tcp",
		codec: func() wire.Codec { return wire.Len32{Max: maxPayload} }},
	{name: "line", sock: "tcp-line", network: "tcp",
		codec: func() wire.Codec { return wire.Line{Max: maxPayload} }},
	{name: "udp", sock: "udp", network: "udp",
		codec: func() wire.Codec { return wire.Datagram{} }},
}

// wsEcho appends to dst the unmasked server frame the reference server echoes
// for the masked client frame f (one frame, as WSClient.Append writes it).
func wsEcho(dst, f []byte) []byte {
	hl := 2
	switch f[1] & 0x7f {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	mask := [4]byte(f[hl : hl+4])
	dst = append(dst, f[0], f[1]&0x7f)
	dst = append(dst, f[2:hl]...)
	start := len(dst)
	dst = append(dst, f[hl+4:]...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

var (
	errNotData = errors.New("bench: echo is not a data message")
	errFull    = errors.New("bench: read buffer full without a whole message")
)

// msgPath is one connection's per-message state, kept as the goroutine engine
// keeps it: a padded payload whose header alone is rewritten per message,
// reused write and read buffers, the codec, the clock and a recorder.
type msgPath struct {
	codec      wire.Codec
	text, udp  bool
	payload    []byte
	wbuf       []byte
	rbuf       []byte
	n          int // bytes held in rbuf
	clk        engine.Clock
	set        *metrics.Set
	rec        *metrics.Recorder
	sent, recv uint64 // next sequence number to send; next expected back
}

func newMsgPath(f framing) *msgPath {
	set := metrics.NewSet(1)
	set.Win.SetStart(0) // every message is measured: the longer recording path
	c := f.codec()
	p := &msgPath{
		codec:   c,
		text:    c.Text(),
		udp:     f.network == "udp",
		payload: make([]byte, payloadSize),
		wbuf:    make([]byte, 0, batch*(payloadSize+c.Overhead())),
		rbuf:    make([]byte, 64<<10),
		clk:     engine.NewClock(),
		set:     set,
		rec:     set.Recorder(0),
	}
	wire.Pad(p.payload)
	return p
}

// encode appends the next message to p.wbuf and records it as sent.
func (p *msgPath) encode() {
	now := p.clk.Now()
	h := wire.Header{ConnID: 1, Seq: p.sent, Intended: now, Sent: now}
	if p.text {
		h.PutText(p.payload)
	} else {
		h.Put(p.payload)
	}
	before := len(p.wbuf)
	p.wbuf = p.codec.Append(p.wbuf, p.payload)
	p.sent++
	p.rec.Sent(now, now, len(p.wbuf)-before)
}

// parse handles every whole message at the front of b and returns how many
// messages and bytes it consumed.
func (p *msgPath) parse(b []byte) (msgs, off int, err error) {
	for off < len(b) {
		op, payload, used, err := p.codec.Next(b[off:])
		if err != nil {
			return msgs, off, err
		}
		if used == 0 {
			break
		}
		if op != wire.OpData {
			return msgs, off, errNotData
		}
		off += used
		if err := p.accept(payload, used); err != nil {
			return msgs, off, err
		}
		msgs++
	}
	return msgs, off, nil
}

// accept decodes one echoed payload of n framed bytes, checks that it is the
// next one expected and records it as received.
func (p *msgPath) accept(payload []byte, n int) error {
	now := p.clk.Now()
	var h wire.Header
	var err error
	if p.text {
		err = h.DecodeText(payload)
	} else {
		err = h.Decode(payload)
	}
	if err != nil {
		return err
	}
	if h.ConnID != 1 || h.Seq != p.recv {
		return fmt.Errorf("bench: echo of conn %d seq %d, want conn 1 seq %d", h.ConnID, h.Seq, p.recv)
	}
	p.recv++
	p.rec.Received(h.Intended, h.Sent, now, n)
	return nil
}

// inMemory sends one message through memory instead of a socket: encode,
// turn it into the server's echo when that differs (WebSocket), parse,
// decode, record.
func (p *msgPath) inMemory(echo func(dst, frame []byte) []byte) error {
	p.wbuf = p.wbuf[:0]
	p.encode()
	b := p.wbuf
	if echo != nil {
		b = echo(p.rbuf[:0], p.wbuf)
	}
	msgs, used, err := p.parse(b)
	if err == nil && (msgs != 1 || used != len(b)) {
		err = fmt.Errorf("bench: parsed %d messages in %d of %d bytes, want 1 in all", msgs, used, len(b))
	}
	return err
}

// exchange writes msgs messages to nc (one write; one datagram each for UDP)
// and reads until all their echoes are parsed.
func (p *msgPath) exchange(nc net.Conn, msgs int) error {
	p.wbuf = p.wbuf[:0]
	for range msgs {
		p.encode()
		if p.udp {
			if _, err := nc.Write(p.wbuf); err != nil {
				return err
			}
			p.wbuf = p.wbuf[:0]
		}
	}
	if !p.udp {
		if _, err := nc.Write(p.wbuf); err != nil {
			return err
		}
	}
	for got := 0; got < msgs; {
		if p.n == len(p.rbuf) {
			return errFull
		}
		m, err := nc.Read(p.rbuf[p.n:])
		if err != nil {
			return err
		}
		p.n += m
		k, used, err := p.parse(p.rbuf[:p.n])
		if err != nil {
			return err
		}
		got += k
		p.n = copy(p.rbuf, p.rbuf[used:p.n])
	}
	return nil
}

// dial connects to srv over f's transport. For WebSocket, bytes the handshake
// reader buffered past the upgrade response are moved into p.rbuf.
func (p *msgPath) dial(tb testing.TB, srv *targets.Server, f framing) net.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var nc net.Conn
	var err error
	switch f.network {
	case "ws":
		var br *bufio.Reader
		nc, br, _, err = ws.Dial(ctx, srv.URL("ws"))
		if br != nil {
			p.n, _ = br.Read(p.rbuf[:br.Buffered()])
			ws.PutReader(br)
		}
	case "tcp":
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", srv.TCPAddr())
	case "udp":
		var d net.Dialer
		nc, err = d.DialContext(ctx, "udp", srv.UDPAddr())
	}
	if err != nil {
		tb.Fatalf("dial %s: %v", f.network, err)
	}
	if err := nc.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		tb.Fatal(err)
	}
	return nc
}

// check fails tb unless every message sent was received and recorded.
func (p *msgPath) check(tb testing.TB) {
	tb.Helper()
	c, _, err := p.set.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	if got, want := c.Sent, int64(p.sent); got != want {
		tb.Errorf("recorded sent %d, want %d", got, want)
	}
	if got, want := c.Received, int64(p.sent); got != want {
		tb.Errorf("recorded received %d, want %d", got, want)
	}
}

func serve(b *testing.B) *targets.Server {
	b.Helper()
	srv, err := targets.Serve(targets.Config{WS: "127.0.0.1:0", TCP: "127.0.0.1:0", UDP: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	return srv
}

// benchSockets runs one sub-benchmark per transport in which an op is one
// exchange of msgs messages with the reference echo server on loopback.
func benchSockets(b *testing.B, msgs int) {
	srv := serve(b)
	for _, f := range framings {
		b.Run(f.sock, func(b *testing.B) {
			p := newMsgPath(f)
			nc := p.dial(b, srv, f)
			defer nc.Close()
			if err := p.exchange(nc, msgs); err != nil { // warm up buffers and histograms
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.exchange(nc, msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			total := float64(b.N) * float64(msgs)
			b.ReportMetric(total/b.Elapsed().Seconds(), "msgs/s")
			if msgs > 1 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/msg")
			}
			p.check(b)
		})
	}
}

// BenchmarkMessagePath measures one message per op, ping-pong on one
// connection to the reference echo server: encode, write, read the echo,
// parse, decode, record. ns/op is the loopback round trip plus the path.
func BenchmarkMessagePath(b *testing.B) { benchSockets(b, 1) }

// BenchmarkMessagePathBatch measures 64 messages per op: encoded into one
// write (64 datagrams for UDP), then read until all 64 are parsed, so the
// round trip is shared. ns/msg is the per-message cost.
func BenchmarkMessagePathBatch(b *testing.B) { benchSockets(b, batch) }

// BenchmarkEncodeParse measures the path without sockets: one message per
// op encoded, parsed back (as the server's unmasked echo for WebSocket),
// decoded and recorded. It must not allocate.
func BenchmarkEncodeParse(b *testing.B) {
	for _, f := range framings {
		b.Run(f.name, func(b *testing.B) {
			p := newMsgPath(f)
			if err := p.inMemory(f.echo); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.inMemory(f.echo); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			p.check(b)
		})
	}
}

// TestMessagePathAllocs asserts that the in-memory message path of every
// framing does not allocate. Not parallel: AllocsPerRun counts every
// allocation in the process.
func TestMessagePathAllocs(t *testing.T) {
	for _, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			p := newMsgPath(f)
			var err error
			allocs := testing.AllocsPerRun(100, func() {
				if e := p.inMemory(f.echo); e != nil && err == nil {
					err = e
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Errorf("%v allocs per message, want 0", allocs)
			}
			p.check(t)
		})
	}
}

// The steady state of a whole engine: connections open, a closed loop
// keeping steadyInFlight messages outstanding on each, replies read, parsed
// and recorded, the next messages framed and written, against the reference
// server in this process. An op is one message answered; allocations are
// counted across every goroutine (engine loops, dialers, the server).
//
//	go test -run '^$' -bench Steady -benchtime 2s .
const (
	steadyConns    = 4
	steadyInFlight = 16
)

// steadyRun is an engine running a closed loop against srv.
type steadyRun struct {
	set *metrics.Set
	eng engine.Engine
	clk engine.Clock
}

// startSteady starts engine name on a closed loop over transport
// network ("ws", "tcp" or "udp") and waits until it is past its first
// 2,000 replies.
func startSteady(tb testing.TB, srv *targets.Server, name, network string) *steadyRun {
	tb.Helper()
	url := srv.URL(network)
	tr := plan.Transport(network)
	addr := url[len(network)+3:]
	if tr == plan.WS {
		addr = addr[:len(addr)-1]
	}
	p := &plan.Plan{
		Name:    "steady",
		Target:  plan.Target{URL: url, Transport: tr, Addr: addr},
		Framing: plan.Len32, Mode: plan.Closed,
		Phases: []plan.Phase{{Name: "steady", Duration: time.Hour, Conns: steadyConns, Size: payloadSize, InFlight: steadyInFlight}},
		// Nothing is lost on loopback; a long timeout keeps expiry out of the way.
		Timeout: time.Minute, ConnectTimeout: 5 * time.Second,
	}
	if tr != plan.TCP {
		p.Framing = ""
	}
	r := &steadyRun{set: metrics.NewSet(4), clk: engine.NewClock()}
	var err error
	r.eng, err = engine.New(name, engine.Config{Plan: p, Set: r.set, Clock: r.clk})
	if err != nil {
		tb.Fatal(err)
	}
	r.set.Win.SetStart(0)
	r.eng.Pace(0, p.Phases[0])
	if err := r.eng.Scale(context.Background(), steadyConns, 0); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		r.eng.Stop(r.clk.Now())
		r.eng.Close()
	})
	r.await(tb, 2000)
	return r
}

// await waits until n more replies have been recorded.
func (r *steadyRun) await(tb testing.TB, n int) {
	deadline := time.Now().Add(ioTimeout)
	for got := 0; got < n; {
		time.Sleep(200 * time.Microsecond)
		tick := r.set.Interval()
		if tick.Errors > 0 || tick.Lost > 0 {
			tb.Fatalf("steady state broke: %d errors, %d lost", tick.Errors, tick.Lost)
		}
		got += int(tick.Received)
		if time.Now().After(deadline) {
			tb.Fatalf("only %d of %d replies in %v", got, n, ioTimeout)
		}
	}
}

// steadyEngines are the engines with a steady-state benchmark here.
func steadyEngines() []string {
	if engine.Default() == "epoll" {
		return []string{"epoll", "goroutine"}
	}
	return []string{"goroutine"}
}

// BenchmarkSteady measures each engine's steady state per transport: ns
// per message answered (wall time, both sides of the exchange on this
// machine's cores) and allocations per message.
func BenchmarkSteady(b *testing.B) {
	srv := serve(b)
	for _, name := range steadyEngines() {
		for _, network := range []string{"ws", "tcp", "udp"} {
			b.Run(name+"/"+network, func(b *testing.B) {
				r := startSteady(b, srv, name, network)
				b.ReportAllocs()
				b.ResetTimer()
				r.await(b, b.N)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// TestSteadyAllocs asserts that the epoll engine's steady state (and the
// reference server's) allocates nothing: 1,000 messages answered, ten
// times, without one allocation in the process.
func TestSteadyAllocs(t *testing.T) {
	if engine.Default() != "epoll" {
		t.Skip("the epoll engine needs Linux")
	}
	if testing.Short() {
		t.Skip("short")
	}
	srv, err := targets.Serve(targets.Config{WS: "127.0.0.1:0", TCP: "127.0.0.1:0", UDP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	for _, network := range []string{"ws", "tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			r := startSteady(t, srv, "epoll", network)
			if n := testing.AllocsPerRun(10, func() { r.await(t, 1000) }); n != 0 {
				t.Errorf("%v allocations per 1,000 messages, want 0", n)
			}
		})
	}
}
