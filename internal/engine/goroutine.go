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
		udp:         e.p.Target.Transport == plan.UDP,
		connectedAt: connected,
		retired:     make(chan struct{}),
		wake:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		readerDone:  make(chan struct{}),
		writerDone:  make(chan struct{}),
		last:        -1,
		maxSeen:     -1,
	}
	c.text = c.codec.Text()
	c.ring.init(64)
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		d.nc.Close()
		rec.ConnClosed()
		return
	}
	e.conns = append(e.conns, c)
	e.set.AddOpen(1)
	e.wg.Add(2)
	e.mu.Unlock()
	go c.readLoop(d.leftover)
	go c.writeLoop()
}

// goodbyeTimeout bounds writing close frames at the end of a run.
const goodbyeTimeout = 100 * time.Millisecond

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
	// One deadline for every connection: writers send their close frames in
	// parallel, and a write blocked by a target that stopped reading fails
	// at the deadline, so closing takes at most goodbyeTimeout in all.
	deadline := time.Now().Add(goodbyeTimeout)
	for _, c := range conns {
		c.mu.Lock()
		c.byeBy = deadline
		c.mu.Unlock()
		c.markClosing()
		_ = c.nc.SetWriteDeadline(deadline)
		c.stopWriter()
	}
	for _, c := range conns {
		<-c.writerDone
		c.nc.Close()
	}
	e.wg.Wait()
	now := e.clk.Now()
	for _, c := range conns {
		c.finish(now, true)
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

// heldWrite is how long a write may take before the delay counts as the
// target holding sends back (a full socket buffer) rather than harness time.
const heldWrite = time.Millisecond

// gconn is one connection of the goroutine engine. Only its writer
// goroutine writes to the socket (messages, pongs, the close frame), so
// frames never interleave, and a peer that stops reading while it writes
// cannot deadlock it: the reader keeps reading and wakes the writer.
type gconn struct {
	e           *Goroutine
	id          uint32
	rec         *metrics.Recorder
	nc          net.Conn
	codec       wire.Codec
	text        bool
	udp         bool
	connectedAt int64
	retired     chan struct{} // closed by retire: stop sending
	wake        chan struct{} // a reply arrived (window room, closed-loop top-up) or a pong is due
	quit        chan struct{} // closed when the connection ends: the writer returns
	quitOnce    sync.Once
	readerDone  chan struct{}
	writerDone  chan struct{}

	mu        sync.Mutex
	sent      uint64 // next sequence number to send
	last      int64  // intended time of the last open-loop send; -1: none yet
	maxSeen   int64  // highest sequence number answered
	ring      ring   // messages awaiting replies
	closing   bool   // sockbench is closing this connection: errors are not the target's
	retiring  bool   // a scale-down ends this connection: it owes no more sends
	dropped   bool   // the connection failed; decided once, by the reader
	firstErr  error
	finished  bool
	payload   []byte // padded payload template
	pong      []byte // payload of the latest ping, to answer
	pongDue   bool
	heldUntil int64     // ns: the target held sends back until then
	byeBy     time.Time // set by Close: the close frame's deadline
	windowHit bool      // the last send attempt found the window full
}

// markClosing tells the connection sockbench is ending it, unless it has
// already failed.
func (c *gconn) markClosing() {
	c.mu.Lock()
	if !c.dropped {
		c.closing = true
	}
	c.mu.Unlock()
}

func (c *gconn) stopWriter() { c.quitOnce.Do(func() { close(c.quit) }) }

func (c *gconn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// retire stops sending, waits for replies for up to the loss timeout, then
// closes the connection (scale-down). Its unanswered messages are in flight.
func (c *gconn) retire() {
	c.mu.Lock()
	c.retiring = true
	c.mu.Unlock()
	close(c.retired)
	c.e.wg.Add(1)
	go func() {
		defer c.e.wg.Done()
		<-c.writerDone
		deadline := time.Now().Add(c.e.p.Timeout)
		for time.Now().Before(deadline) {
			c.mu.Lock()
			n := c.ring.pending
			c.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		c.markClosing()
		c.goodbye(time.Now().Add(goodbyeTimeout))
		c.nc.Close()
		<-c.readerDone
		c.finish(c.e.clk.Now(), false)
	}()
}

// goodbye tells a WebSocket peer the connection is ending normally (close
// code 1000), so that servers do not log an abnormal closure. Only the
// writer, or the closer once the writer has returned, calls it.
func (c *gconn) goodbye(deadline time.Time) {
	wc, ok := c.codec.(*wire.WSClient)
	if !ok {
		return
	}
	c.mu.Lock()
	if c.dropped {
		c.mu.Unlock()
		return
	}
	frame := wc.AppendFrame(nil, ws.OpClose, []byte{0x03, 0xe8}) // 1000: normal closure
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(deadline)
	_, _ = c.nc.Write(frame)
}

// finish does the end-of-connection accounting once, after the reader has
// returned: messages past the loss timeout are lost; the rest are lost if the
// connection failed and in flight if sockbench closed it. With unsent, the
// open-loop sends it still owed are counted as unsent.
func (c *gconn) finish(now int64, unsent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	c.finished = true
	c.expireLocked(now)
	pending, measured := c.ring.drop(c.e.set.Win)
	c.e.outstanding.Add(-pending)
	if c.dropped {
		c.rec.Lost(pending-measured, false)
		c.rec.Lost(measured, true)
	} else {
		c.rec.InFlight(measured)
		c.rec.ConnClosed()
	}
	if (unsent || c.dropped) && c.e.p.Mode == plan.Open {
		c.rec.Unsent(c.owedLocked())
	}
	c.e.set.AddOpen(-1)
}

// owedLocked counts the measured open-loop sends still scheduled after the
// last one sent.
func (c *gconn) owedLocked() int64 {
	s := c.e.sched.Load()
	if s.stopAt == math.MaxInt64 || c.retiring {
		return 0
	}
	var n int64
	last := c.last
	for {
		t, _, ok := s.next(c.id, last, c.connectedAt)
		if !ok {
			return n
		}
		if c.e.set.Win.Measured(t) {
			n++
		}
		last = t
	}
}

// fail records the first error on the connection and closes it; the reader
// then does the accounting.
func (c *gconn) fail(err error) {
	c.mu.Lock()
	if c.firstErr == nil && !c.closing {
		c.firstErr = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

func (c *gconn) over() bool { return c.dropped || c.finished }

// expiryPeriod is how often a writer with messages awaited checks them
// against the loss timeout.
func (c *gconn) expiryPeriod() time.Duration { return max(c.e.p.Timeout/4, time.Millisecond) }

// writeLoop is the connection's only writer: scheduled sends (open loop),
// top-ups (closed loop), pongs and the closing frame. It also expires
// messages past the loss timeout.
func (c *gconn) writeLoop() {
	defer c.e.wg.Done()
	defer close(c.writerDone)
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
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s := c.e.sched.Load()
		now := c.e.clk.Now()
		wait := time.Hour
		c.mu.Lock()
		c.expireLocked(now)
		if c.ring.pending > 0 {
			wait = c.expiryPeriod()
		}
		c.mu.Unlock()
		var err error
		if buf, err = c.sendPong(buf); err != nil {
			c.fail(err)
			return
		}
		if open {
			c.mu.Lock()
			next, _, ok := s.next(c.id, c.last, c.connectedAt)
			c.mu.Unlock()
			switch {
			case !ok:
				if s.stopAt != math.MaxInt64 && owes {
					owes = false // every scheduled send is made
					c.e.owing.Add(-1)
				}
			case next <= now:
				var sent int
				buf, sent, err = c.sendDue(buf, s, now)
				if err != nil {
					c.fail(err)
					return
				}
				if sent > 0 {
					continue
				}
				// Window full: a reply (or an expiry) makes room.
			default:
				wait = min(wait, time.Duration(next-now))
			}
		} else if now < s.stopAt && len(s.regimes) > 0 {
			if buf, err = c.topUp(buf, s.regimes[s.regimeFor(now)]); err != nil {
				c.fail(err)
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.changed:
			timer.Stop()
		case <-c.wake:
			timer.Stop()
		case <-c.retired:
			return
		case <-c.quit:
			c.mu.Lock()
			bye := c.byeBy
			c.mu.Unlock()
			if !bye.IsZero() { // Close: say goodbye by its deadline
				c.goodbye(bye)
			}
			return
		}
		c.mu.Lock()
		over := c.over()
		c.mu.Unlock()
		if over {
			return
		}
	}
}

// write writes b and reports whether the write was held up by the target (a
// full socket buffer), in which case later sends count their lag from now.
func (c *gconn) write(b []byte) error {
	t0 := c.e.clk.Now()
	_, err := c.nc.Write(b)
	if t1 := c.e.clk.Now(); t1-t0 > int64(heldWrite) {
		c.mu.Lock()
		c.heldUntil = t1
		c.mu.Unlock()
	}
	return err
}

// sendPong answers the latest ping, if one is due.
func (c *gconn) sendPong(buf []byte) ([]byte, error) {
	c.mu.Lock()
	if !c.pongDue {
		c.mu.Unlock()
		return buf, nil
	}
	c.pongDue = false
	buf = c.codec.(*wire.WSClient).AppendFrame(buf[:0], ws.OpPong, c.pong)
	c.mu.Unlock()
	return buf, c.write(buf)
}

// sendDue writes every open-loop message due by now (up to maxBatch, and
// within the window) in one write (one datagram each for UDP) and returns
// how many it sent.
func (c *gconn) sendDue(buf []byte, s *schedule, now int64) ([]byte, int, error) {
	buf = buf[:0]
	c.mu.Lock()
	n := 0
	window := c.e.p.MaxInFlight
	for n < maxBatch && !c.over() {
		next, r, ok := s.next(c.id, c.last, c.connectedAt)
		if !ok || next > now {
			break
		}
		if window > 0 && c.ring.pending >= window {
			c.windowHit = true
			break
		}
		if c.windowHit {
			c.windowHit = false
			c.heldUntil = now // the window reopened now
		}
		c.ensurePayload(r.size)
		start := len(buf)
		buf = c.appendMsgLocked(buf, next, now)
		c.last = next
		n++
		if c.udp {
			c.mu.Unlock()
			err := c.write(buf[start:])
			c.mu.Lock()
			if err != nil {
				c.mu.Unlock()
				return buf, n, err
			}
			buf = buf[:start]
		}
	}
	c.mu.Unlock()
	if c.udp || n == 0 {
		return buf, n, nil
	}
	return buf, n, c.write(buf)
}

// topUp sends closed-loop messages until r.inflight are outstanding.
func (c *gconn) topUp(buf []byte, r regime) ([]byte, error) {
	buf = buf[:0]
	c.mu.Lock()
	c.ensurePayload(r.size)
	for c.ring.pending < r.inflight && !c.over() {
		now := c.e.clk.Now()
		start := len(buf)
		buf = c.appendMsgLocked(buf, now, now)
		if c.udp {
			c.mu.Unlock()
			if err := c.write(buf[start:]); err != nil {
				return buf, err
			}
			buf = buf[:start]
			c.mu.Lock()
		}
	}
	c.mu.Unlock()
	if len(buf) == 0 {
		return buf, nil
	}
	return buf, c.write(buf)
}

func (c *gconn) ensurePayload(size int) {
	if len(c.payload) != size {
		c.payload = make([]byte, size)
		wire.Pad(c.payload)
	}
}

// appendMsgLocked frames the next message into buf and accounts it as sent
// at now, scheduled for intended.
func (c *gconn) appendMsgLocked(buf []byte, intended, now int64) []byte {
	h := wire.Header{ConnID: c.id, Seq: c.sent, Intended: intended, Sent: now}
	if c.text {
		h.PutText(c.payload)
	} else {
		h.Put(c.payload)
	}
	before := len(buf)
	buf = c.codec.Append(buf, c.payload)
	c.ring.add(c.sent, intended, now)
	c.sent++
	c.e.outstanding.Add(1)
	c.rec.SentAfter(intended, c.heldUntil, now, len(buf)-before)
	return buf
}

// expireLocked counts messages unanswered past the loss timeout as lost.
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
	if !c.closing {
		c.dropped = true
		if c.firstErr != nil {
			err = c.firstErr
		}
	}
	dropped := c.dropped
	c.mu.Unlock()
	c.nc.Close()
	c.stopWriter()
	close(c.readerDone)
	if !dropped {
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
	c.finish(c.e.clk.Now(), true)
}

// readStream reads a byte stream into one buffer, parses whole messages in
// place and keeps only an incomplete tail. Every message completed by one
// read gets that read's time as its receive time.
func (c *gconn) readStream(leftover []byte) error {
	buf := make([]byte, max(4096, 4*(c.e.p.MaxSize()+c.codec.Overhead()), len(leftover)))
	n := copy(buf, leftover)
	now := c.e.clk.Now()
	for {
		used, err := c.parse(buf[:n], now)
		if err != nil {
			return err
		}
		n = copy(buf, buf[used:n])
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := c.nc.Read(buf[n:])
		now = c.e.clk.Now()
		n += m
		if err != nil {
			if m > 0 {
				c.parse(buf[:n], now)
			}
			return err
		}
	}
}

// readDatagrams handles one reply per datagram.
func (c *gconn) readDatagrams() error {
	buf := make([]byte, 65536)
	for {
		m, err := c.nc.Read(buf)
		if err != nil {
			return err
		}
		c.onReply(buf[:m], m, c.e.clk.Now())
	}
}

// parse handles every complete message in b, received at now, and returns
// the bytes used.
func (c *gconn) parse(b []byte, now int64) (int, error) {
	off := 0
	for off < len(b) {
		op, payload, used, err := c.codec.Next(b[off:])
		if err != nil {
			return off, &metrics.ProtocolError{Err: err} // counted when the connection drops
		}
		if used == 0 {
			break
		}
		off += used
		switch op {
		case wire.OpData:
			c.onReply(payload, used, now)
		case wire.OpPing:
			c.rec.Bytes(used)
			c.mu.Lock()
			c.pong = append(c.pong[:0], payload...)
			c.pongDue = true
			c.mu.Unlock()
			c.signal()
		case wire.OpPong:
			c.rec.Bytes(used)
		case wire.OpClose:
			c.rec.Bytes(used)
			return off, errPeerClose
		}
	}
	return off, nil
}

var errPeerClose = &peerCloseError{}

type peerCloseError struct{}

func (*peerCloseError) Error() string { return "websocket close frame from the target" }
func (*peerCloseError) Unwrap() error { return net.ErrClosed }

// onReply accounts one data message of n bytes received at now.
func (c *gconn) onReply(payload []byte, n int, now int64) {
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
		return
	}
	if h.Flags&wire.FlagProbe != 0 {
		c.rec.Bytes(n)
		return
	}
	c.mu.Lock()
	sl, ok := c.acceptLocked(&h)
	c.mu.Unlock()
	if !ok {
		c.rec.Bytes(n)
		return
	}
	c.rec.Received(sl.intended, sl.sent, now, n)
	if c.e.p.Mode == plan.Closed || c.e.p.MaxInFlight > 0 {
		c.signal()
	}
}

// acceptLocked matches a reply to the message it answers and reports
// whether it is a latency sample, with that message's send times; anything
// else is counted as an anomaly.
func (c *gconn) acceptLocked(h *wire.Header) (slot, bool) {
	if h.ConnID != c.id || h.Seq >= c.sent {
		c.rec.Anomaly(metrics.Unexpected)
		return slot{}, false
	}
	outcome, sl := c.ring.answerSlot(h.Seq)
	switch outcome {
	case answered:
		c.e.outstanding.Add(-1)
		if int64(h.Seq) < c.maxSeen {
			c.rec.Anomaly(metrics.Reordered)
		}
		c.maxSeen = max(c.maxSeen, int64(h.Seq))
		return sl, true
	case wasAnswered:
		c.rec.Anomaly(metrics.Duplicate)
	default:
		c.rec.Anomaly(metrics.Late)
	}
	return slot{}, false
}
