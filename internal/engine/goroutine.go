package engine

import (
	"context"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/wire"
)

// maxBatch bounds how many due messages one connection writes in one go
// when it has fallen behind its schedule.
const maxBatch = 256

// Goroutine is the portable engine: two goroutines per connection (a
// paced writer and a reader) using the standard net package. It is the
// correctness reference for faster engines.
type Goroutine struct {
	cfg   Config
	p     *plan.Plan
	clk   Clock
	set   *metrics.Set
	sched atomic.Pointer[schedule]

	mu      sync.Mutex
	conns   []*gconn // open, in id order
	nextID  uint32
	closing bool

	pumpStop    chan struct{} // closed by Close: ends the timer pump
	outstanding atomic.Int64  // messages sent and not yet answered or lost
	owing       atomic.Int64  // open-loop writers with sends still due before the stop
	wg          sync.WaitGroup
}

var _ Engine = (*Goroutine)(nil)

// NewGoroutine returns a goroutine-per-connection engine for cfg.
func NewGoroutine(cfg Config) *Goroutine {
	e := &Goroutine{cfg: cfg, p: cfg.Plan, clk: cfg.Clock, set: cfg.Set, pumpStop: make(chan struct{})}
	e.sched.Store(newSchedule())
	if cfg.Plan.Mode == plan.Open {
		go pumpTimers(e.pumpStop)
	}
	return e
}

// Name implements Engine.
func (e *Goroutine) Name() string { return "goroutine" }

// Outstanding implements Engine: messages awaited plus connections that
// still owe scheduled sends (a writer running late at the end of the run).
func (e *Goroutine) Outstanding() int64 { return e.outstanding.Load() + e.owing.Load() }

func (e *Goroutine) publish(f func(s *schedule) *schedule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.sched.Load()
	e.sched.Store(f(old))
	close(old.changed)
}

// Pace implements Engine. fromNs may be in the future: the regime is then
// known to every writer before it begins.
func (e *Goroutine) Pace(fromNs int64, ph plan.Phase) {
	r := regimeOf(e.p, fromNs, ph)
	e.publish(func(s *schedule) *schedule { return s.with(r) })
}

// Stop implements Engine; atNs may be in the future.
func (e *Goroutine) Stop(atNs int64) {
	e.publish(func(s *schedule) *schedule { return s.stopped(atNs) })
}

// Scale implements Engine.
func (e *Goroutine) Scale(ctx context.Context, n int, rate float64) error {
	e.mu.Lock()
	open := len(e.conns)
	var retire []*gconn
	if n < open {
		retire = append(retire, e.conns[n:]...)
		e.conns = e.conns[:n]
	}
	e.mu.Unlock()
	for _, c := range retire {
		c.retire()
	}
	need := n - open
	if need <= 0 {
		return nil
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range need {
		if rate > 0 {
			at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					wg.Wait()
					return ctx.Err()
				}
			}
		}
		e.mu.Lock()
		id := e.nextID
		e.nextID++
		e.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.open(ctx, id)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// open dials connection id and starts its goroutines.
func (e *Goroutine) open(ctx context.Context, id uint32) {
	rec := e.set.Recorder(int(id))
	t0 := e.clk.Now()
	d, err := dial(ctx, e.p.Target, e.p.ConnectTimeout)
	if err != nil {
		if ctx.Err() == nil {
			rec.ConnFailed(metrics.Classify(err))
			e.logf("connection %d: %v", id, err)
		}
		return
	}
	connected := e.clk.Now()
	if e.p.Target.Transport != plan.UDP {
		rec.Connected(connected - t0)
	} else {
		rec.Opened()
	}
	c := &gconn{
		e: e, id: id, rec: rec, nc: d.nc, codec: newCodec(e.p, id),
		udp:           e.p.Target.Transport == plan.UDP,
		firstMeasured: math.MaxUint64,
		maxSeen:       -1,
		retired:       make(chan struct{}),
		room:          make(chan struct{}, 1),
		quit:          make(chan struct{}),
		connectedAt:   connected,
	}
	c.text = c.codec.Text()
	if c.udp {
		c.ring.init(64)
	}
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		d.nc.Close()
		return
	}
	e.conns = append(e.conns, c)
	e.set.AddOpen(1)
	e.wg.Add(2)
	e.mu.Unlock()
	go c.readLoop(d.leftover)
	go c.writeLoop()
}

// Close implements Engine.
func (e *Goroutine) Close() {
	e.mu.Lock()
	if !e.closing {
		close(e.pumpStop)
	}
	e.closing = true
	conns := e.conns
	e.conns = nil
	e.mu.Unlock()
	// One deadline for every goodbye: a target that stopped reading costs
	// 100 ms in all, not 100 ms per connection.
	deadline := time.Now().Add(goodbyeTimeout)
	for _, c := range conns {
		c.markClosing()
		c.goodbye(deadline)
		c.nc.Close()
	}
	e.wg.Wait()
	now := e.clk.Now()
	for _, c := range conns {
		c.finish(now)
	}
}

// pumpPeriod is how often the timer pump wakes the scheduler.
const pumpPeriod = 50 * time.Microsecond

// pumpTimers keeps Go's timers on time until stop is closed. When every
// goroutine is parked, the runtime sleeps in epoll_wait, whose timeout is in
// whole milliseconds, so a send timer fires up to 1 ms late (measured here:
// send lag p50 0.52 ms, p99 1.07 ms for 200 connections at 100 msg/s each).
// A thread that sleeps 50 us with nanosleep and then yields makes the
// scheduler check its timers that often (send lag p50 55 us, p99 122 us), for
// about 15% of one core.
func pumpTimers(stop chan struct{}) {
	ts := syscall.NsecToTimespec(int64(pumpPeriod))
	for {
		select {
		case <-stop:
			return
		default:
		}
		_ = syscall.Nanosleep(&ts, nil)
		runtime.Gosched()
	}
}

func (e *Goroutine) logf(format string, args ...any) {
	if e.cfg.Logf != nil {
		e.cfg.Logf(format, args...)
	}
}

// gconn is one connection of the goroutine engine.
type gconn struct {
	e           *Goroutine
	id          uint32
	rec         *metrics.Recorder
	nc          net.Conn
	codec       wire.Codec
	text        bool
	udp         bool
	connectedAt int64
	retired     chan struct{}
	room        chan struct{} // signalled by the reader when a reply frees window room
	quit        chan struct{} // closed when the connection ends: the writer returns
	quitOnce    sync.Once

	mu            sync.Mutex
	sent          uint64 // next sequence number to send
	recv          uint64 // stream: next sequence number expected back
	firstMeasured uint64 // first measured sequence number; MaxUint64 until one is sent
	maxSeen       int64  // udp: highest sequence number answered
	ring          ring   // udp: messages awaiting replies
	closing       bool   // sockbench is closing this connection: errors are not the target's
	dead          bool
	firstErr      error
	finished      bool
	payload       []byte // padded payload template
	pong          []byte // reader's buffer for pong frames
}

func (c *gconn) markClosing() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.stopWriter()
}

func (c *gconn) stopWriter() { c.quitOnce.Do(func() { close(c.quit) }) }

// retire stops sending, waits for replies for up to the loss timeout, then
// closes the connection (scale-down).
func (c *gconn) retire() {
	close(c.retired)
	c.e.wg.Add(1)
	go func() {
		defer c.e.wg.Done()
		deadline := time.Now().Add(c.e.p.Timeout)
		for time.Now().Before(deadline) {
			c.mu.Lock()
			n := c.pendingLocked()
			c.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		c.markClosing()
		c.goodbye(time.Now().Add(goodbyeTimeout))
		c.nc.Close()
		c.finish(c.e.clk.Now())
	}()
}

// goodbyeTimeout bounds writing close frames at the end of a run.
const goodbyeTimeout = 100 * time.Millisecond

// goodbye tells a WebSocket peer the connection is ending normally (close
// code 1000), so that servers do not log an abnormal closure. It gives up at
// deadline and does not wait for the peer's close frame.
func (c *gconn) goodbye(deadline time.Time) {
	wc, ok := c.codec.(*wire.WSClient)
	if !ok {
		return
	}
	c.mu.Lock()
	frame := wc.AppendFrame(nil, ws.OpClose, []byte{0x03, 0xe8}) // 1000: normal closure
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(deadline)
	_, _ = c.nc.Write(frame)
}

func (c *gconn) pendingLocked() uint64 {
	if c.udp {
		return uint64(c.ring.pending)
	}
	return c.sent - c.recv
}

// measuredIn counts the measured sequence numbers in [a, b).
func (c *gconn) measuredIn(a, b uint64) int64 {
	a = max(a, c.firstMeasured)
	if b <= a {
		return 0
	}
	return int64(b - a)
}

// finish does the end-of-connection accounting once: messages still awaited
// are in flight (closed by sockbench) or lost (the connection died), UDP
// messages past the timeout are lost.
func (c *gconn) finish(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	c.finished = true
	var pending, measured int64
	if c.udp {
		c.expireLocked(now)
		pending, measured = c.ring.drop(c.e.set.Win)
	} else {
		pending, measured = int64(c.sent-c.recv), c.measuredIn(c.recv, c.sent)
		c.recv = c.sent
	}
	c.e.outstanding.Add(-pending)
	if c.dead && !c.closing {
		c.rec.Lost(pending-measured, false)
		c.rec.Lost(measured, true)
	} else {
		c.rec.InFlight(measured)
		c.rec.ConnClosed()
	}
	c.e.set.AddOpen(-1)
}

// fail records the first error on the connection and closes it; the reader
// does the accounting.
func (c *gconn) fail(err error) {
	c.mu.Lock()
	if c.firstErr == nil && !c.closing {
		c.firstErr = err
	}
	c.dead = true
	c.mu.Unlock()
	c.nc.Close()
}

// writeLoop sends on schedule until the schedule stops or the connection
// dies.
func (c *gconn) writeLoop() {
	defer c.e.wg.Done()
	open := c.e.p.Mode == plan.Open
	owes := open
	if owes {
		c.e.owing.Add(1)
	}
	defer func() {
		if owes {
			c.e.owing.Add(-1)
		}
	}()
	var buf []byte
	last := int64(-1) // intended time of the last message sent
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	closedLoopStarted := false
	for {
		s := c.e.sched.Load()
		now := c.e.clk.Now()
		wait := time.Hour
		switch {
		case !open:
			if c.udp {
				c.mu.Lock()
				c.expireLocked(now)
				c.mu.Unlock()
				wait = max(c.e.p.Timeout/4, time.Millisecond)
			}
			if now < s.stopAt && len(s.regimes) > 0 && (!closedLoopStarted || c.udp) {
				closedLoopStarted = true
				buf = c.topUp(buf, s.regimes[s.regimeFor(now)])
				if buf == nil && c.isDead() {
					return
				}
			}
		default:
			next, _, ok := s.next(c.id, last, c.connectedAt)
			switch {
			case !ok:
				if s.stopAt != math.MaxInt64 && owes {
					owes = false // every scheduled send is made
					c.e.owing.Add(-1)
				}
			case next <= now:
				var err error
				var sent int
				buf, last, sent, err = c.sendDue(buf, s, last, now)
				if err != nil {
					c.fail(err)
					return
				}
				if sent > 0 {
					continue
				}
				// Window full: wait for a reply (or, for UDP, an expiry).
				if c.udp {
					wait = max(c.e.p.Timeout/4, time.Millisecond)
				}
			default:
				wait = time.Duration(next - now)
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.changed:
			if !timer.Stop() {
				<-timer.C
			}
		case <-c.room:
			if !timer.Stop() {
				<-timer.C
			}
		case <-c.retired:
			return
		case <-c.quit:
			return
		}
		if c.isDead() {
			return
		}
	}
}

func (c *gconn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead || c.closing
}

// sendDue writes every message due by now after last (up to maxBatch, and
// within the window) in one write (one datagram each for UDP) and returns
// the intended time of the last one sent and how many it sent.
func (c *gconn) sendDue(buf []byte, s *schedule, last, now int64) ([]byte, int64, int, error) {
	buf = buf[:0]
	c.mu.Lock()
	if c.udp {
		c.expireLocked(now)
	}
	n := 0
	window := uint64(c.e.p.MaxInFlight)
	for n < maxBatch {
		next, r, ok := s.next(c.id, last, c.connectedAt)
		if !ok || next > now || (window > 0 && c.pendingLocked() >= window) {
			break
		}
		c.ensurePayload(r.size)
		start := len(buf)
		buf = c.appendMsgLocked(buf, next, now)
		last = next
		n++
		if c.udp {
			c.mu.Unlock()
			_, err := c.nc.Write(buf[start:])
			c.mu.Lock()
			if err != nil {
				c.mu.Unlock()
				return buf, last, n, err
			}
			buf = buf[:start]
		}
	}
	c.mu.Unlock()
	if c.udp || n == 0 {
		return buf, last, n, nil
	}
	_, err := c.nc.Write(buf)
	return buf, last, n, err
}

// topUp sends closed-loop messages until r.inflight are outstanding.
func (c *gconn) topUp(buf []byte, r regime) []byte {
	buf = buf[:0]
	c.mu.Lock()
	if c.dead || c.closing {
		c.mu.Unlock()
		return nil
	}
	c.ensurePayload(r.size)
	now := c.e.clk.Now()
	for int(c.pendingLocked()) < r.inflight {
		buf = c.appendMsgLocked(buf, now, now)
		if c.udp {
			c.mu.Unlock()
			if _, err := c.nc.Write(buf); err != nil {
				c.fail(err)
				return nil
			}
			buf = buf[:0]
			c.mu.Lock()
		}
	}
	c.mu.Unlock()
	if len(buf) > 0 {
		if _, err := c.nc.Write(buf); err != nil {
			c.fail(err)
			return nil
		}
	}
	return buf
}

func (c *gconn) ensurePayload(size int) {
	if len(c.payload) != size {
		c.payload = make([]byte, size)
		wire.Pad(c.payload)
	}
}

// appendMsgLocked frames the next message into buf and accounts it as sent.
func (c *gconn) appendMsgLocked(buf []byte, intended, now int64) []byte {
	h := wire.Header{ConnID: c.id, Seq: c.sent, Intended: intended, Sent: now}
	if c.text {
		h.PutText(c.payload)
	} else {
		h.Put(c.payload)
	}
	before := len(buf)
	buf = c.codec.Append(buf, c.payload)
	if c.firstMeasured == math.MaxUint64 && c.e.set.Win.Measured(intended) {
		c.firstMeasured = c.sent
	}
	if c.udp {
		c.ring.add(c.sent, intended, now)
	}
	c.sent++
	c.e.outstanding.Add(1)
	c.rec.Sent(intended, now, len(buf)-before)
	return buf
}

// expireLocked counts UDP messages unanswered past the timeout as lost.
func (c *gconn) expireLocked(now int64) {
	n, measured := c.ring.expire(now-int64(c.e.p.Timeout), c.e.set.Win)
	if n > 0 {
		c.e.outstanding.Add(-n)
		c.rec.Lost(n-measured, false)
		c.rec.Lost(measured, true)
	}
}

// readLoop reads, parses and accounts replies until the connection ends.
func (c *gconn) readLoop(leftover []byte) {
	defer c.e.wg.Done()
	var err error
	if c.udp {
		err = c.readDatagrams()
	} else {
		err = c.readStream(leftover)
	}
	c.mu.Lock()
	closing := c.closing
	if c.firstErr != nil {
		err = c.firstErr
	}
	c.dead = true
	c.mu.Unlock()
	c.nc.Close()
	c.stopWriter()
	if closing {
		return
	}
	cls := metrics.Classify(err)
	c.rec.ConnDropped(cls)
	c.e.logf("connection %d dropped (%s): %v", c.id, cls, err)
	c.e.mu.Lock()
	for i, x := range c.e.conns {
		if x == c {
			c.e.conns = append(c.e.conns[:i], c.e.conns[i+1:]...)
			break
		}
	}
	c.e.mu.Unlock()
	c.finish(c.e.clk.Now())
}

// readStream reads a byte stream into one buffer, parses whole messages in
// place and keeps only an incomplete tail.
func (c *gconn) readStream(leftover []byte) error {
	buf := make([]byte, max(4096, 4*(c.e.p.MaxSize()+c.codec.Overhead()), len(leftover)))
	n := copy(buf, leftover)
	var wbuf []byte
	for {
		used, out, err := c.parse(buf[:n], wbuf)
		wbuf = out
		if err != nil {
			return err
		}
		n = copy(buf, buf[used:n])
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := c.nc.Read(buf[n:])
		n += m
		if err != nil {
			if m > 0 {
				c.parse(buf[:n], wbuf)
			}
			return err
		}
	}
}

// readDatagrams handles one reply per datagram.
func (c *gconn) readDatagrams() error {
	buf := make([]byte, 65536)
	var wbuf []byte
	for {
		m, err := c.nc.Read(buf)
		if err != nil {
			return err
		}
		wbuf = c.onReply(buf[:m], m, wbuf)
	}
}

// parse handles every complete message in b and returns the bytes used.
func (c *gconn) parse(b []byte, wbuf []byte) (int, []byte, error) {
	off := 0
	for off < len(b) {
		op, payload, used, err := c.codec.Next(b[off:])
		if err != nil {
			return off, wbuf, &metrics.ProtocolError{Err: err} // counted when the connection drops
		}
		if used == 0 {
			break
		}
		off += used
		switch op {
		case wire.OpData:
			wbuf = c.onReply(payload, used, wbuf)
		case wire.OpPing:
			c.rec.Bytes(used)
			wc := c.codec.(*wire.WSClient)
			c.mu.Lock()
			c.pong = wc.AppendFrame(c.pong[:0], ws.OpPong, payload)
			pong := c.pong
			c.mu.Unlock()
			if _, err := c.nc.Write(pong); err != nil {
				return off, wbuf, err
			}
		case wire.OpPong:
			c.rec.Bytes(used)
		case wire.OpClose:
			c.rec.Bytes(used)
			return off, wbuf, errPeerClose
		}
	}
	return off, wbuf, nil
}

var errPeerClose = &peerCloseError{}

type peerCloseError struct{}

func (*peerCloseError) Error() string { return "websocket close frame from the target" }
func (*peerCloseError) Unwrap() error { return net.ErrClosed }

// onReply accounts one data message from the target.
func (c *gconn) onReply(payload []byte, n int, wbuf []byte) []byte {
	now := c.e.clk.Now()
	var h wire.Header
	var err error
	if c.text {
		err = h.DecodeText(payload)
	} else {
		err = h.Decode(payload)
	}
	if err != nil {
		c.rec.Bytes(n)
		c.rec.Error(metrics.ErrProtocol)
		c.rec.Anomaly(metrics.Unexpected)
		return wbuf
	}
	if h.Flags&wire.FlagProbe != 0 {
		c.rec.Bytes(n)
		return wbuf
	}
	c.mu.Lock()
	ok := c.acceptLocked(&h, now)
	c.mu.Unlock()
	if !ok {
		c.rec.Bytes(n)
		return wbuf
	}
	c.rec.Received(h.Intended, h.Sent, now, n)
	if c.e.p.MaxInFlight > 0 {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
	if c.e.p.Mode == plan.Closed {
		s := c.e.sched.Load()
		if now < s.stopAt && len(s.regimes) > 0 {
			if out := c.topUp(wbuf, s.regimes[s.regimeFor(now)]); out != nil {
				wbuf = out
			}
		}
	}
	return wbuf
}

// acceptLocked checks a reply against what was sent and reports whether it
// is a latency sample; anything else is counted as an anomaly.
func (c *gconn) acceptLocked(h *wire.Header, now int64) bool {
	if h.ConnID != c.id || h.Seq >= c.sent {
		c.rec.Anomaly(metrics.Unexpected)
		return false
	}
	if c.udp {
		st, intended := c.ring.answer(h.Seq)
		switch st {
		case answered:
			c.e.outstanding.Add(-1)
			if int64(h.Seq) < c.maxSeen {
				c.rec.Anomaly(metrics.Reordered)
			}
			c.maxSeen = max(c.maxSeen, int64(h.Seq))
			_ = intended
			return true
		case wasAnswered:
			c.rec.Anomaly(metrics.Duplicate)
		default:
			c.rec.Anomaly(metrics.Late)
		}
		return false
	}
	switch {
	case h.Seq < c.recv:
		c.rec.Anomaly(metrics.Duplicate)
		return false
	case h.Seq > c.recv:
		// The stream skipped replies: the target dropped them.
		skipped := int64(h.Seq - c.recv)
		measured := c.measuredIn(c.recv, h.Seq)
		c.rec.Lost(skipped-measured, false)
		c.rec.Lost(measured, true)
		c.e.outstanding.Add(-skipped)
	}
	c.recv = h.Seq + 1
	c.e.outstanding.Add(-1)
	return true
}
