package engine

import (
	"context"
	"math"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
)

// maxBatch bounds how many due messages one connection writes in one go
// when it has fallen behind its schedule.
const maxBatch = 256

// Goroutine is the portable engine: two goroutines per connection (a
// paced writer and a reader) using the standard net package. It is the
// correctness reference for faster engines.
type Goroutine struct {
	base

	mu      sync.Mutex
	conns   []*gconn // open, in id order
	closing bool

	pumpStop chan struct{} // closed by Close: ends the timer pump
	wg       sync.WaitGroup
}

var _ Engine = (*Goroutine)(nil)

// NewGoroutine returns a goroutine-per-connection engine for cfg.
func NewGoroutine(cfg Config) *Goroutine {
	e := &Goroutine{base: newBase(cfg), pumpStop: make(chan struct{})}
	e.sched.Store(newSchedule())
	if cfg.Plan.Mode == plan.Open {
		go pumpTimers(e.pumpStop)
	}
	return e
}

// Name implements Engine.
func (e *Goroutine) Name() string { return "goroutine" }

// Scale implements Engine.
func (e *Goroutine) Scale(ctx context.Context, n int, rate float64) error {
	open, retire := trim(&e.mu, &e.conns, n)
	for _, c := range retire {
		c.retire()
	}
	return scaleUp(ctx, n-open, rate, e.newID, e.open)
}

// open dials connection id and starts its goroutines.
func (e *Goroutine) open(ctx context.Context, id uint32) {
	d, rec, connected, ok := dialRecorded(ctx, &e.base, id, e.set.Recorder(int(id)))
	if !ok {
		return
	}
	c := &gconn{
		e: e, nc: d.nc,
		retired:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.msgs.init(&e.base, id, rec, connected, &c.payloadBuf)
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
	for {
		select {
		case <-stop:
			return
		default:
		}
		nanosleep(pumpPeriod)
		runtime.Gosched()
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
	msgs
	e          *Goroutine
	nc         net.Conn
	retired    chan struct{} // closed by retire: stop sending
	wake       chan struct{} // a reply arrived (window room, closed-loop top-up) or a pong is due
	quit       chan struct{} // closed when the connection ends: the writer returns
	quitOnce   sync.Once
	readerDone chan struct{}
	writerDone chan struct{}

	mu       sync.Mutex // guards msgs and the fields below
	closing  bool       // sockbench is closing this connection: errors are not the target's
	retiring bool       // a scale-down ends this connection: it owes no more sends
	dropped  bool       // the connection failed; decided once, by the reader
	firstErr error
	finished bool
	byeBy    time.Time // set by Close: the close frame's deadline

	payloadBuf []byte // msgs.payload points here
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
	c.mu.Lock()
	if c.dropped {
		c.mu.Unlock()
		return
	}
	frame := c.appendGoodbye(nil)
	c.mu.Unlock()
	if len(frame) == 0 {
		return
	}
	_ = c.nc.SetWriteDeadline(deadline)
	_, _ = c.nc.Write(frame)
}

// finish does the end-of-connection accounting once, after the reader has
// returned (msgs.settle). With unsent, the open-loop sends it still owed are
// counted as unsent.
func (c *gconn) finish(now int64, unsent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	c.finished = true
	c.settle(now, c.dropped, unsent, c.retiring)
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
	owes := open && !c.silent // a subscriber that only listens owes no sends
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
		c.expire(now)
		if c.ring.pending > 0 {
			wait = c.expiryPeriod()
		}
		if c.member != nil && c.udp {
			c.tick(now)             // a repeated join or leave, sent with the pong below
			wait = c.expiryPeriod() // and the next look
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

// sendPong answers the latest ping, if one is due, and sends the joins and
// leaves a subscriber owes (one datagram each over UDP).
func (c *gconn) sendPong(buf []byte) ([]byte, error) {
	c.mu.Lock()
	buf = c.appendPong(buf[:0])
	if !c.udp {
		buf = c.appendControls(buf, c.e.clk.Now())
	}
	c.mu.Unlock()
	if len(buf) > 0 {
		if err := c.write(buf); err != nil {
			return buf, err
		}
	}
	for c.udp {
		c.mu.Lock()
		var ok bool
		buf, ok = c.appendControl(buf[:0], c.e.clk.Now())
		c.mu.Unlock()
		if !ok {
			break
		}
		if err := c.write(buf); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// sendDue writes every open-loop message due by now (up to maxBatch, and
// within the window) in one write (one datagram each for UDP) and returns
// how many it sent.
func (c *gconn) sendDue(buf []byte, s *schedule, now int64) ([]byte, int, error) {
	limit := maxBatch
	if c.udp {
		limit = 1
	}
	total := 0
	for total < maxBatch {
		c.mu.Lock()
		var n int
		if !c.over() {
			buf, n = c.appendDue(buf[:0], s, now, limit)
		}
		c.mu.Unlock()
		if n == 0 {
			return buf, total, nil
		}
		total += n
		if err := c.write(buf); err != nil {
			return buf, total, err
		}
	}
	return buf, total, nil
}

// topUp sends closed-loop messages until r.inflight are outstanding.
func (c *gconn) topUp(buf []byte, r regime) ([]byte, error) {
	limit := math.MaxInt
	if c.udp {
		limit = 1
	}
	for {
		c.mu.Lock()
		var n int
		if !c.over() {
			buf, n = c.appendTopUp(buf[:0], r, limit, c.e.clk.Now())
		}
		c.mu.Unlock()
		if n == 0 {
			return buf, nil
		}
		if err := c.write(buf); err != nil {
			return buf, err
		}
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
		used, wake, err := c.parse(buf[:n], now, &c.mu)
		if wake {
			c.signal()
		}
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
				c.parse(buf[:n], now, &c.mu)
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
		if c.reply(buf[:m], m, c.e.clk.Now(), &c.mu) && c.wantsWake() {
			c.signal()
		}
	}
}

// wantsWake reports whether a reply should wake the writer: it tops up a
// closed loop or reopens a full window.
func (c *gconn) wantsWake() bool {
	return c.e.p.Mode == plan.Closed || c.e.p.MaxInFlight > 0 || c.member != nil
}
