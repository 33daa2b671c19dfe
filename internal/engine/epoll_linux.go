package engine

import (
	"context"
	"io"
	"math"
	"sync"
	"syscall"
	"time"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/poll"
)

// Epoll is the event-loop engine (Linux): N loops, each an epoll instance
// that owns its connections outright. A loop reads every ready socket until
// it runs dry into one buffer, parses replies in place, keeps only an
// incomplete tail per connection, and writes all of one connection's due
// messages with one write; a write the kernel cannot take is queued and
// finished on EPOLLOUT. Open-loop sends come from a per-loop heap of
// connections ordered by their next intended send time, waited for with
// nanosecond epoll timeouts. Connections are dialled (TCP connect, WebSocket
// handshake) by short-lived goroutines and then handed to a loop.
type Epoll struct {
	base
	loops []*loop

	mu      sync.Mutex
	conns   []*econn // open, in the order they opened (scale-down retires the last)
	closing bool
	wg      sync.WaitGroup
	release func() // gives back the Ps reserved for the loops
}

var _ Engine = (*Epoll)(nil)

// epollSupported is true where NewEpoll works.
const epollSupported = true

// NewEpoll starts loops event loops (0: GOMAXPROCS) for cfg.
func NewEpoll(cfg Config) (*Epoll, error) {
	if cfg.Plan.Target.TLS {
		return nil, ErrNoTLS
	}
	n := cfg.Loops
	if n <= 0 {
		n = poll.CPUs()
	}
	e := &Epoll{base: newBase(cfg), release: poll.Reserve(n)}
	e.sched.Store(newSchedule())
	for i := range n {
		p, err := poll.New(256)
		if err != nil {
			for _, l := range e.loops {
				l.poll.Close()
			}
			e.release()
			return nil, err
		}
		l := &loop{
			e: e, idx: i, poll: p, rec: cfg.Set.Recorder(i), hold: cfg.Set.Len() > n,
			rbuf:  make([]byte, loopReadBuffer),
			sched: e.sched.Load(),
		}
		e.loops = append(e.loops, l)
	}
	e.onPublish = func() {
		for _, l := range e.loops {
			l.poll.Wake()
		}
	}
	for _, l := range e.loops {
		e.wg.Add(1)
		go l.run()
	}
	return e, nil
}

// Name implements Engine.
func (e *Epoll) Name() string { return "epoll" }

// LoopCount is the number of event loops.
func (e *Epoll) LoopCount() int { return len(e.loops) }

// Scale implements Engine.
func (e *Epoll) Scale(ctx context.Context, n int, rate float64) error {
	open, retire := trim(&e.mu, &e.conns, n)
	for _, c := range retire {
		c.l.post(cmd{op: opRetire, c: c})
	}
	return scaleUp(ctx, n-open, rate, e.newID, e.open)
}

// open dials connection id and hands it to its loop.
func (e *Epoll) open(ctx context.Context, id uint32) {
	l := e.loops[int(id)%len(e.loops)]
	d, rec, at, ok := dialRecorded(ctx, &e.base, id, e.dialRecorder(id))
	if !ok {
		return
	}
	sc, ok := d.nc.(syscallConn)
	if !ok {
		d.nc.Close()
		rec.ConnFailed(metrics.ErrOther)
		e.logf("connection %d: %T has no file descriptor", id, d.nc)
		return
	}
	fd, err := poll.Detach(sc)
	if err != nil {
		rec.ConnDropped(metrics.Classify(err)) // it did open: Connected is recorded
		e.logf("connection %d: %v", id, err)
		return
	}
	c := &econn{l: l, fd: fd, hidx: -1, tail: d.leftover}
	c.msgs.init(&e.base, id, l.rec, at, &l.payload)
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		poll.Close(fd)
		rec.ConnClosed()
		return
	}
	e.conns = append(e.conns, c)
	e.set.AddOpen(1)
	// Posted under mu, so that it reaches the loop before Close's quit.
	l.post(cmd{op: opAdd, c: c})
	e.mu.Unlock()
}

// dialRecorder is where connection id's dial is recorded: a recorder no
// loop owns, if the set has one, so that loops can hold theirs.
func (e *Epoll) dialRecorder(id uint32) *metrics.Recorder {
	n := len(e.loops)
	if spare := e.set.Len() - n; spare > 0 {
		return e.set.Recorder(n + int(id)%spare)
	}
	return e.set.Recorder(int(id))
}

// syscallConn is a connection whose socket a loop can take over.
type syscallConn interface {
	SyscallConn() (syscall.RawConn, error)
	Close() error
}

// Close implements Engine: each loop says goodbye on its connections (a
// WebSocket close frame, if the socket takes it without waiting), closes
// them, does their accounting and returns.
func (e *Epoll) Close() {
	e.mu.Lock()
	already := e.closing
	e.closing = true
	e.conns = nil
	if !already {
		for _, l := range e.loops {
			l.post(cmd{op: opQuit})
		}
	}
	e.mu.Unlock()
	if already {
		return
	}
	e.wg.Wait()
	for _, l := range e.loops {
		l.poll.Close()
	}
	e.release()
}

// forget removes c from the open list (it dropped).
func (e *Epoll) forget(c *econn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, x := range e.conns {
		if x == c {
			e.conns = append(e.conns[:i], e.conns[i+1:]...)
			return
		}
	}
}

const (
	// loopReadBuffer is each loop's read buffer, in bytes.
	loopReadBuffer = 256 << 10
	// minWait is the shortest timed wait; a send due sooner is waited for
	// by polling without sleeping.
	minWait = 2 * time.Microsecond
	// maxEarly caps how early a loop wakes before a send is due, in ns.
	maxEarly = int64(200 * time.Microsecond)
	// maxDatagrams bounds the datagrams one loop pass reads from one UDP
	// socket, so that one busy socket cannot starve the rest.
	maxDatagrams = 64
	// maxReads bounds the reads of one stream per pass, so that one busy
	// connection cannot keep the loop (and its recorder) to itself.
	maxReads = 4
	// datagramSlots is how many datagrams one recvmmsg reads.
	datagramSlots = 16
)

// Connection states.
const (
	live = iota
	retiring
	closed
)

// econn is one connection of the epoll engine, owned by one loop.
type econn struct {
	msgs
	l         *loop
	fd        int
	tail      []byte // an incomplete message from the last read
	out       []byte // bytes (UDP: length-prefixed datagrams) the kernel has not taken yet, from outOff
	outOff    int
	blockedAt int64 // ns: when out became non-empty
	hidx      int   // index in the loop's send heap; -1: not in it
	nextAt    int64 // intended time of the next open-loop send
	state     uint8
	owes      bool  // counted in base.owing: open-loop sends still due
	retireBy  int64 // ns: a retiring connection closes by then
}

// Loop commands, posted from other goroutines.
const (
	opAdd = iota
	opRetire
	opQuit
)

type cmd struct {
	op int
	c  *econn
}

// loop is one event loop: an epoll instance and the connections it owns.
type loop struct {
	e       *Epoll
	idx     int
	poll    *poll.Poller
	rec     *metrics.Recorder // the loop's own; held while the loop is awake (if hold)
	hold    bool
	rbuf    []byte          // the loop's read buffer
	wbuf    []byte          // frames being built for one write
	payload []byte          // the message template every connection of the loop builds in
	dg      *poll.Datagrams // UDP receive slots, made on first use
	batch   poll.Batch      // UDP sends
	ends    []int           // where each datagram of a batch ends in wbuf
	conns   []*econn        // by fd
	heap    []*econn        // open-loop connections by nextAt
	sched   *schedule       // the schedule the loop last acted on

	inMu  sync.Mutex
	inbox []cmd
	work  []cmd // the inbox being handled, swapped with it

	retiring   []*econn
	nextExpiry int64
	early      int64 // ns: how late timed waits wake (learned); the loop wakes this much before a send
	quitting   bool
	openConns  int // connections owned
}

// post hands a command to the loop and wakes it.
func (l *loop) post(c cmd) {
	l.inMu.Lock()
	l.inbox = append(l.inbox, c)
	l.inMu.Unlock()
	l.poll.Wake()
}

func (l *loop) run() {
	defer l.e.wg.Done()
	poll.LockThread()
	clk := l.e.clk
	for {
		l.holdRecorder(true)
		l.handleInbox()
		if l.quitting {
			l.closeAll()
			l.holdRecorder(false)
			return
		}
		now := clk.Now()
		if s := l.e.sched.Load(); s != l.sched {
			l.sched = s
			l.rescheduleAll(now)
		}
		l.fire(now)
		if now >= l.nextExpiry {
			l.expireAll(now)
			l.nextExpiry = now + int64(max(l.e.p.Timeout/4, time.Millisecond))
		}
		if len(l.retiring) > 0 {
			l.checkRetiring(now)
		}
		before := clk.Now()
		timeout := l.timeout(before)
		l.holdRecorder(false)
		evs, err := l.poll.Wait(timeout)
		if late := clk.Now() - before - int64(timeout); timeout > 0 && len(evs) == 0 && late >= 0 {
			// The wait timed out (a wake-up returns early): how late did
			// the kernel wake us? Learn it, and wake that much early next
			// time, then poll until the send is due.
			l.early += (min(late, maxEarly) - l.early) / 8
		}
		if err != nil {
			l.e.logf("epoll loop %d: %v", l.idx, err)
			time.Sleep(time.Millisecond)
			continue
		}
		if len(evs) > 0 {
			l.holdRecorder(true)
			l.events(evs, clk.Now())
			l.holdRecorder(false)
		}
	}
}

// events handles what one wait reported.
func (l *loop) events(evs []poll.Event, now int64) {
	for i := range evs {
		ev := evs[i].Events
		fd := poll.FD(&evs[i])
		if fd >= len(l.conns) || l.conns[fd] == nil {
			continue
		}
		c := l.conns[fd]
		if ev&poll.Out != 0 && c.queued() > 0 {
			l.flush(c, now)
		}
		if c.state != closed && ev&(poll.In|poll.Err|poll.Hup|poll.RdHup) != 0 {
			l.readable(c, now)
		}
	}
}

// holdRecorder takes or lets go of the loop's recorder: held while the loop
// works, every message is recorded without locking; let go while it sleeps,
// so that the per-second roll-up is never kept waiting long.
func (l *loop) holdRecorder(on bool) {
	switch {
	case !l.hold:
	case on:
		l.rec.Hold()
	default:
		l.rec.Release()
	}
}

// timeout is how long the loop may sleep: until the next open-loop send,
// the next expiry check, or for ever.
func (l *loop) timeout(now int64) time.Duration {
	next := int64(math.MaxInt64)
	if len(l.heap) > 0 {
		next = l.heap[0].nextAt
	}
	if l.openConns > 0 && l.nextExpiry < next {
		next = l.nextExpiry
	}
	if len(l.retiring) > 0 {
		next = min(next, now+int64(time.Millisecond))
	}
	if next == math.MaxInt64 {
		return -1
	}
	d := time.Duration(next - now - l.early)
	if d < minWait {
		return 0
	}
	return d
}

func (l *loop) handleInbox() {
	l.inMu.Lock()
	l.work, l.inbox = l.inbox, l.work[:0]
	l.inMu.Unlock()
	for i, c := range l.work {
		switch c.op {
		case opAdd:
			l.add(c.c)
		case opRetire:
			l.retire(c.c)
		case opQuit:
			l.quitting = true
		}
		l.work[i] = cmd{}
	}
}

// add registers a dialled connection, parses what came with the handshake
// and starts its sending.
func (l *loop) add(c *econn) {
	now := l.e.clk.Now()
	if c.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*econn, c.fd+1-len(l.conns)+64)...)
	}
	l.conns[c.fd] = c
	l.openConns++
	if err := l.poll.Add(c.fd, poll.In|poll.RdHup); err != nil {
		l.drop(c, err, now)
		return
	}
	if l.e.p.Mode == plan.Open && !c.silent {
		c.owes = true
		l.e.owing.Add(1)
	}
	if len(c.tail) > 0 {
		b := c.tail
		c.tail = nil
		used, _, err := c.parse(b, now, nil)
		if err != nil {
			l.drop(c, err, now)
			return
		}
		c.tail = append([]byte(nil), b[used:]...)
	}
	l.service(c, now)
}

// rescheduleAll recomputes every connection's next send under a newly
// published schedule, and tops up closed loops.
func (l *loop) rescheduleAll(now int64) {
	for _, c := range l.conns {
		if c != nil && c.state == live {
			l.service(c, now)
		}
	}
}

// fire sends for every connection whose next send is due.
func (l *loop) fire(now int64) {
	for len(l.heap) > 0 && l.heap[0].nextAt <= now {
		// Each connection's sends are stamped when they are made: with
		// thousands due at once, the pass itself takes time, and that
		// lateness is the harness's (send lag), not the target's.
		l.service(l.heap[0], l.e.clk.Now())
	}
}

// service does whatever a live connection can do now: answer a ping, send
// open-loop messages that are due (then re-arm its place in the send heap),
// or top up a closed loop. A connection with queued output waits for
// EPOLLOUT instead.
func (l *loop) service(c *econn, now int64) {
	if c.state != live {
		return
	}
	if c.queued() > 0 {
		l.unheap(c)
		return
	}
	s := l.sched
	if c.udp {
		l.serviceDatagrams(c, s, now)
		return
	}
	buf := c.appendControls(c.appendPong(l.wbuf[:0]), now)
	if len(buf) > 0 && !l.write(c, buf, now) {
		return
	}
	if l.e.p.Mode == plan.Open {
		for sent := 0; sent < maxBatch; {
			var n int
			buf, n = c.appendDue(l.wbuf[:0], s, now, maxBatch)
			if n == 0 {
				break
			}
			sent += n
			l.wbuf = buf
			if !l.write(c, buf, now) {
				return
			}
			if c.queued() > 0 {
				l.unheap(c)
				return
			}
		}
		l.rearm(c, s, now)
		return
	}
	if now >= s.stopAt || len(s.regimes) == 0 {
		return
	}
	r := s.regimes[s.regimeFor(now)]
	for {
		var n int
		buf, n = c.appendTopUp(l.wbuf[:0], r, math.MaxInt, l.e.clk.Now()) // one write for the whole window
		if n == 0 {
			return
		}
		l.wbuf = buf
		if !l.write(c, buf, now) || c.queued() > 0 {
			return
		}
	}
}

// rearm puts c in the send heap at its next open-loop send, or takes it out
// if it has none (then it owes nothing once the stop is known) or is held
// back by a full window (a reply brings it back).
func (l *loop) rearm(c *econn, s *schedule, now int64) {
	if c.silent {
		l.unheap(c) // a subscriber that only listens
		return
	}
	next, _, ok := s.next(c.id, c.last, c.connectedAt)
	switch {
	case !ok:
		l.unheap(c)
		if s.stopAt != math.MaxInt64 {
			l.settleOwing(c)
		}
	case next <= now && c.windowHit:
		l.unheap(c)
	default:
		c.nextAt = next
		if c.hidx < 0 {
			l.push(c)
		} else {
			l.fix(c.hidx)
		}
	}
}

func (l *loop) settleOwing(c *econn) {
	if c.owes {
		c.owes = false
		l.e.owing.Add(-1)
	}
}

// write sends b on c, or queues it behind output already queued. It returns
// false if the connection failed (and was dropped).
func (l *loop) write(c *econn, b []byte, now int64) bool {
	if c.queued() > 0 {
		c.out = append(c.out, b...)
		return true
	}
	n, err := poll.Write(c.fd, b)
	if err != nil && !poll.Again(err) {
		l.drop(c, err, now)
		return false
	}
	n = max(n, 0)
	if n < len(b) {
		c.out, c.outOff = append(c.out[:0], b[n:]...), 0
		return l.blocked(c, now)
	}
	return true
}

// serviceDatagrams is service for UDP: the datagrams due (open loop) or
// owed (closed loop) now, up to datagramSlots per sendmmsg.
func (l *loop) serviceDatagrams(c *econn, s *schedule, now int64) {
	open := l.e.p.Mode == plan.Open
	var r regime
	if !open {
		if now >= s.stopAt || len(s.regimes) == 0 {
			return
		}
		r = s.regimes[s.regimeFor(now)]
	}
	for sent := 0; sent < maxBatch; {
		buf := l.wbuf[:0]
		l.ends = l.ends[:0]
		for len(l.ends) < datagramSlots { // joins and leaves first
			var ok bool
			if buf, ok = c.appendControl(buf, now); !ok {
				break
			}
			l.ends = append(l.ends, len(buf))
		}
		for len(l.ends) < datagramSlots {
			var n int
			if open {
				buf, n = c.appendDue(buf, s, now, 1)
			} else {
				buf, n = c.appendTopUp(buf, r, 1, now)
			}
			if n == 0 {
				break
			}
			l.ends = append(l.ends, len(buf))
		}
		l.wbuf = buf
		if len(l.ends) == 0 {
			break
		}
		sent += len(l.ends)
		if !l.writeDatagrams(c, buf, l.ends, now) {
			return
		}
		if c.queued() > 0 {
			l.unheap(c)
			return
		}
	}
	if open {
		l.rearm(c, s, now)
	}
}

// writeDatagrams sends the datagrams buf[:ends[0]], buf[ends[0]:ends[1]],
// ... with one sendmmsg. What the socket buffer cannot take is queued,
// length-prefixed, for EPOLLOUT. It returns false if the connection failed.
func (l *loop) writeDatagrams(c *econn, buf []byte, ends []int, now int64) bool {
	sent := 0
	if c.queued() == 0 {
		var n int
		var err error
		if len(ends) == 1 {
			// One datagram (a ping-pong): write is cheaper than sendmmsg.
			if _, err = poll.Write(c.fd, buf[:ends[0]]); err == nil {
				n = 1
			}
		} else {
			n, err = l.batch.Send(c.fd, buf, ends)
		}
		sent = n
		if err != nil && !poll.Again(err) {
			l.drop(c, err, now)
			return false
		}
		if sent < len(ends) && !l.blocked(c, now) {
			return false
		}
	}
	start := 0
	if sent > 0 {
		start = ends[sent-1]
	}
	for _, end := range ends[sent:] {
		n := end - start
		c.out = append(c.out, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		c.out = append(c.out, buf[start:end]...)
		start = end
	}
	return true
}

// blocked arms EPOLLOUT: the target is not taking our bytes.
// It reports false if that failed and the connection was dropped.
func (l *loop) blocked(c *econn, now int64) bool {
	c.blockedAt = now
	l.unheap(c)
	if err := l.poll.Mod(c.fd, poll.In|poll.RdHup|poll.Out); err != nil {
		l.drop(c, err, now)
		return false
	}
	return true
}

// flush writes queued output; once it is all written the connection sends
// again, with the time it was held back attributed to the target.
func (l *loop) flush(c *econn, now int64) {
	if c.udp {
		for c.queued() >= 4 {
			q := c.out[c.outOff:]
			n := int(q[0])<<24 | int(q[1])<<16 | int(q[2])<<8 | int(q[3])
			_, err := poll.Write(c.fd, q[4:4+n])
			if poll.Again(err) {
				return
			}
			if err != nil {
				l.drop(c, err, now)
				return
			}
			c.outOff += 4 + n
		}
	} else {
		n, err := poll.Write(c.fd, c.out[c.outOff:])
		if err != nil && !poll.Again(err) {
			l.drop(c, err, now)
			return
		}
		c.outOff += max(n, 0)
		if c.queued() > 0 {
			return
		}
	}
	c.out, c.outOff = c.out[:0], 0
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	if err := l.poll.Mod(c.fd, poll.In|poll.RdHup); err != nil {
		l.drop(c, err, now)
		return
	}
	if now-c.blockedAt > int64(heldWrite) {
		c.heldUntil = now
	}
	if c.state == retiring || l.quitting {
		return
	}
	l.service(c, now)
}

// readable reads what c has for us and accounts it.
func (l *loop) readable(c *econn, now int64) {
	if c.udp {
		l.readDatagrams(c, now)
		return
	}
	reads := 0
	for {
		// Parse in the loop's buffer, with the last read's incomplete tail
		// copied in front, unless the tail is a message too large for it:
		// then read into the tail's own buffer.
		buf, n := l.rbuf, len(c.tail)
		inTail := n+4096 > len(buf)
		if inTail {
			if cap(c.tail)-n < 4096 {
				c.tail = append(c.tail, make([]byte, max(n, 64<<10))...)[:n]
			}
			buf = c.tail[:cap(c.tail)]
		} else {
			copy(buf, c.tail)
		}
		m, err := poll.Read(c.fd, buf[n:])
		if m <= 0 {
			switch {
			case poll.Again(err):
			case err == nil: // end of stream
				l.drop(c, io.EOF, now)
			default:
				l.drop(c, err, now)
			}
			return
		}
		now = l.e.clk.Now()
		used, wake, perr := c.parse(buf[:n+m], now, nil)
		rest := buf[used : n+m]
		switch {
		case inTail:
			c.tail = c.tail[:copy(c.tail[:cap(c.tail)], rest)]
		case len(rest) > 0:
			c.tail = append(c.tail[:0], rest...)
		case cap(c.tail) > 64<<10:
			c.tail = nil
		default:
			c.tail = c.tail[:0]
		}
		if perr != nil {
			l.drop(c, perr, now)
			return
		}
		if wake && c.state == live {
			l.service(c, now)
		}
		if c.state == closed || n+m < len(buf) {
			return // closed by a failed write, or drained: epoll reports more
		}
		if reads++; reads == maxReads {
			return // level-triggered: the rest comes on the next pass
		}
	}
}

// readDatagrams reads up to maxDatagrams replies, in batches of
// datagramSlots per recvmmsg; each batch has one receive time. A batch
// shorter than the slots drained the socket, so no read is wasted on
// EAGAIN.
func (l *loop) readDatagrams(c *econn, now int64) {
	if l.dg == nil {
		l.dg = poll.NewDatagrams(datagramSlots, 65536)
	}
	wake := false
	for range maxDatagrams / datagramSlots {
		n, err := l.dg.Recv(c.fd)
		if err != nil {
			if !poll.Again(err) {
				l.drop(c, err, now)
				return
			}
			break
		}
		now = l.e.clk.Now()
		for i := range n {
			p := l.dg.Payload(i)
			if c.reply(p, len(p), now, nil) {
				wake = true
			}
		}
		if n < datagramSlots {
			break
		}
	}
	if wake && c.state == live {
		l.service(c, now)
	}
}

// expireAll counts messages past the loss timeout as lost, on every
// connection; the slots freed may let a closed loop or a full window send.
func (l *loop) expireAll(now int64) {
	for _, c := range l.conns {
		if c != nil && c.state == live && c.tick(now) {
			l.service(c, now) // a repeated join or leave (UDP)
		}
		if c == nil || c.ring.pending == 0 {
			continue
		}
		before := c.ring.pending
		c.expire(now)
		if c.ring.pending < before && c.state == live {
			l.service(c, now)
		}
	}
}

// retire stops c's sending; it closes once its replies are in or the loss
// timeout has passed (checkRetiring).
func (l *loop) retire(c *econn) {
	if c.state != live {
		return
	}
	c.state = retiring
	l.unheap(c)
	l.settleOwing(c)
	c.retireBy = l.e.clk.Now() + int64(l.e.p.Timeout)
	l.retiring = append(l.retiring, c)
}

func (l *loop) checkRetiring(now int64) {
	keep := l.retiring[:0]
	for _, c := range l.retiring {
		switch {
		case c.state == closed:
		case c.ring.pending == 0 || now >= c.retireBy:
			l.goodbye(c)
			l.closeConn(c)
			c.settle(l.e.clk.Now(), false, false, true)
		default:
			keep = append(keep, c)
		}
	}
	clear(l.retiring[len(keep):])
	l.retiring = keep
}

// goodbye writes a WebSocket close frame (1000) if the socket takes it at
// once; sockbench never waits on a target to say goodbye.
func (l *loop) goodbye(c *econn) {
	if c.udp {
		return // nothing to say, and queued datagrams are not worth waiting for
	}
	if q := c.queued(); q > 0 {
		if n, _ := poll.Write(c.fd, c.out[c.outOff:]); n < q {
			return // a close frame now would cut a frame in two
		}
	}
	if b := c.appendGoodbye(l.wbuf[:0]); len(b) > 0 {
		_, _ = poll.Write(c.fd, b)
	}
}

// closeConn closes c's socket and forgets it; the caller settles.
func (l *loop) closeConn(c *econn) {
	c.state = closed
	l.unheap(c)
	l.settleOwing(c)
	l.conns[c.fd] = nil
	l.openConns--
	poll.Close(c.fd)
	c.tail, c.out = nil, nil
}

// drop ends a connection that failed: counted by error class, its awaited
// messages lost and its owed sends unsent.
func (l *loop) drop(c *econn, err error, now int64) {
	if c.state == closed {
		return
	}
	wasRetiring := c.state == retiring
	l.closeConn(c)
	cls := metrics.Classify(err)
	c.rec.ConnDropped(cls)
	l.e.logf("connection %d dropped (%s): %v", c.id, cls, err)
	if !wasRetiring {
		l.e.forget(c)
	}
	c.settle(now, true, true, wasRetiring)
}

// closeAll ends the run on this loop's connections: goodbye, close, and
// count what is still awaited as in flight.
func (l *loop) closeAll() {
	now := l.e.clk.Now()
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		wasRetiring := c.state == retiring
		l.goodbye(c)
		l.closeConn(c)
		c.settle(now, false, !wasRetiring, wasRetiring)
	}
	l.retiring = nil
}

// queued is the number of bytes waiting for EPOLLOUT.
func (c *econn) queued() int { return len(c.out) - c.outOff }

// The send heap: a binary min-heap of connections by nextAt.

func (l *loop) push(c *econn) {
	c.hidx = len(l.heap)
	l.heap = append(l.heap, c)
	l.up(c.hidx)
}

func (l *loop) unheap(c *econn) {
	i := c.hidx
	if i < 0 {
		return
	}
	last := len(l.heap) - 1
	if i != last {
		l.swap(i, last)
	}
	l.heap[last] = nil
	l.heap = l.heap[:last]
	c.hidx = -1
	if i != last {
		l.fix(i)
	}
}

func (l *loop) fix(i int) {
	if !l.down(i) {
		l.up(i)
	}
}

func (l *loop) swap(i, j int) {
	l.heap[i], l.heap[j] = l.heap[j], l.heap[i]
	l.heap[i].hidx = i
	l.heap[j].hidx = j
}

func (l *loop) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if l.heap[p].nextAt <= l.heap[i].nextAt {
			return
		}
		l.swap(i, p)
		i = p
	}
}

func (l *loop) down(i int) bool {
	start := i
	n := len(l.heap)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && l.heap[r].nextAt < l.heap[c].nextAt {
			c = r
		}
		if l.heap[i].nextAt <= l.heap[c].nextAt {
			break
		}
		l.swap(i, c)
		i = c
	}
	return i > start
}
