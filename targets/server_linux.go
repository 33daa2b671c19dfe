//go:build linux && !targets_goroutine

package targets

import (
	"fmt"
	"math/bits"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/sockbench/sockbench/internal/poll"
)

const (
	// readBufferSize is each loop's read buffer, in bytes: every socket the
	// loop serves is read into it.
	readBufferSize = 128 << 10
	// maxReadsPerEvent bounds the reads given to one connection per readiness
	// event, so that one busy peer cannot starve the loop's others (the
	// poller is level-triggered: what is left is reported again).
	maxReadsPerEvent = 4
	// outSlack is the most a read can make the replies outgrow it, in bytes:
	// a close frame with its reason, or an HTTP response to an upgrade request.
	outSlack = 1 << 10
	// minReadRoom is the least room, in bytes, for which a connection's queue
	// is worth a read; below it the loop stops reading from the connection.
	minReadRoom = 4 << 10
	// sweepEvery is how often a loop checks handshake, idle and linger
	// deadlines, when it has any to check.
	sweepEvery = 50 * time.Millisecond
	// acceptBatch bounds the connections accepted per listener event.
	acceptBatch = 64
	// udpSlots is the number of datagrams read (and echoed) per system call.
	udpSlots = 16
	// minBufShift is log2 of the smallest pooled buffer (256 bytes: any
	// incomplete frame header or control frame fits).
	minBufShift = 8
	// poolBytes caps the bytes a loop keeps in free buffers.
	poolBytes = 4 << 20
	// eventBatch is the most events taken per wait.
	eventBatch = 256
)

// kind is what a slot in a loop's fd table is and which state it is in.
type kind uint8

const (
	kindFree        kind = iota // recycled
	kindWSListener              // the WebSocket listening socket
	kindTCPListener             // the TCP listening socket
	kindUDP                     // the UDP socket
	kindWSHandshake             // accepted, upgrade request not complete yet
	kindWS                      // upgraded: frames
	kindTCP                     // TCP echo
	kindLinger                  // ending: queue drains, then the write side is shut and input discarded
)

// Counter indexes into a loop's counters.
const (
	cAccepted = iota
	cOpen
	cHandshakeFailures
	cMessages
	cBytesIn
	cBytesOut
	cDatagrams
	cProtocolErrors
	cIOErrors
	nCounters
)

// backend is the epoll server: Config.Loops event loops.
type backend struct {
	loops    []*loop
	upgrader ws.Upgrader
	epoch    time.Time   // loops' clocks count from here
	stopping atomic.Bool // Close has begun
	wg       sync.WaitGroup
}

// loopStats are the counters a loop publishes for Stats, on cache lines of
// their own so that loops never write to a line another loop writes.
type loopStats struct {
	_          [64]byte
	v          [nCounters]atomic.Int64
	peakQueued atomic.Int64 // the longest any connection's queue has been, in bytes (for tests)
	conns      atomic.Int64 // connections the loop owns (for tests)
	_          [64]byte
}

// conn is one socket a loop owns: a connection, a listener or the UDP
// socket. It is kept small: an idle connection is this struct and nothing else.
type conn struct {
	fd       int32
	idx      int32  // position in the loop's list
	events   uint32 // the interest registered with epoll
	kind     kind
	state    ws.State // WebSocket: server side, plus fragmented inside a message
	paused   bool     // not reading: the queue is full (listener: accepts paused)
	shut     bool     // the write side is shut (linger)
	moff     uint8    // WebSocket: offset into mask of the next payload byte
	mask     [4]byte  // WebSocket: the streamed frame's mask
	rem      int64    // WebSocket: payload bytes of the streamed data frame still to come
	flen     int64    // WebSocket: the streamed data frame's length
	last     int64    // loop clock, ns: the last read or write progress
	deadline int64    // loop clock, ns: handshake or linger deadline; listener: end of accept pause
	backoff  int64    // listener: the current accept pause, ns
	in       []byte   // bytes carried to the next read: an incomplete frame or upgrade request
	out      []byte   // queued replies; out[off:] is unsent
	off      int
}

// pending returns the bytes queued on c and not yet written.
func (c *conn) pending() int { return len(c.out) - c.off }

// handoff is an accepted connection on its way to the loop that will own it.
type handoff struct {
	fd   int
	kind kind
}

// loop is one event loop: an epoll instance, the sockets it owns and the
// buffers it reads into and writes from. Only its goroutine touches it, except
// for the handoff queue (under mu) and pub (atomics).
type loop struct {
	s     *Server
	p     *poll.Poller
	conns []*conn // by fd; nil = not this loop's
	list  []*conn // every socket this loop owns
	free  []*conn // recycled conn structs
	pool  bufPool
	rbuf  []byte // the read buffer
	obuf  []byte // replies to one read, written with one write
	hs    upgradeIO
	dg    *poll.Datagrams // nil unless the UDP socket is this loop's
	udpLo int             // datagrams dg[udpLo:udpHi] wait to be echoed
	udpHi int

	now       int64 // loop clock: ns since epoch, read after each wait
	nextSweep int64
	lastLog   int64
	rr        int // round robin over loops for accepted connections

	// What needs the sweep: connections with a handshake or linger deadline,
	// established connections (for the idle timeout), paused listeners.
	nHandshake, nLinger, nOpen, nPausedLn int
	published                             int64 // nOpen as last published

	st  [nCounters]int64 // counted since the last publish
	pub *loopStats

	hasIncoming atomic.Bool
	mu          sync.Mutex
	incoming    []handoff
	spare       []handoff
	stopped     bool
	closeErr    error // from closing this loop's listeners
}

// start binds the listeners, builds the loops, gives each socket to one and
// starts them.
func (s *Server) start() error {
	wsLn, tcpLn, udpConn, err := s.listenAll()
	if err != nil {
		return err
	}
	s.epoch = time.Now()
	type socket struct {
		fd   int
		kind kind
	}
	// Take each socket out of Go's poller for a loop to own. Detach closes
	// what it is given, whether it succeeds or not.
	var socks []socket
	var derr error
	take := func(c detachable, k kind) {
		if derr != nil {
			_ = c.Close()
			return
		}
		fd, err := poll.Detach(c)
		if err != nil {
			derr = err
			return
		}
		socks = append(socks, socket{fd, k})
	}
	if wsLn != nil {
		take(wsLn.(*net.TCPListener), kindWSListener)
	}
	if tcpLn != nil {
		take(tcpLn.(*net.TCPListener), kindTCPListener)
	}
	if udpConn != nil {
		take(udpConn, kindUDP)
	}
	fail := func(err error) error {
		for _, so := range socks {
			_ = poll.Close(so.fd)
		}
		for _, l := range s.loops {
			_ = l.p.Close()
		}
		s.loops = nil
		return err
	}
	if derr != nil {
		return fail(fmt.Errorf("targets: listen: %w", derr))
	}
	for range s.cfg.Loops {
		p, err := poll.New(eventBatch)
		if err != nil {
			return fail(fmt.Errorf("targets: epoll: %w", err))
		}
		s.loops = append(s.loops, &loop{s: s, p: p, rbuf: make([]byte, readBufferSize), pub: new(loopStats)})
	}
	// Spread the sockets over the loops: with two loops the UDP socket shares
	// a loop with the WebSocket listener, which is busy only while accepting.
	for i, so := range socks {
		l := s.loops[i%len(s.loops)]
		if so.kind == kindUDP {
			l.dg = poll.NewDatagrams(udpSlots, udpBufferSize)
		}
		if err := l.register(so.fd, so.kind); err != nil {
			return fail(fmt.Errorf("targets: epoll: %w", err))
		}
	}
	s.wg.Add(len(s.loops))
	for _, l := range s.loops {
		go l.run()
	}
	return nil
}

// detachable is a socket poll.Detach can take from Go's poller.
type detachable interface {
	SyscallConn() (syscall.RawConn, error)
	Close() error
}

// stats sums the loops' published counters.
func (s *Server) stats() Stats {
	var v [nCounters]int64
	for _, l := range s.loops {
		for i := range v {
			v[i] += l.pub.v[i].Load()
		}
	}
	return Stats{
		ConnsAccepted:       v[cAccepted],
		ConnsOpen:           v[cOpen],
		WSHandshakeFailures: v[cHandshakeFailures],
		MessagesEchoed:      v[cMessages],
		BytesIn:             v[cBytesIn],
		BytesOut:            v[cBytesOut],
		DatagramsEchoed:     v[cDatagrams],
		ProtocolErrors:      v[cProtocolErrors],
		IOErrors:            v[cIOErrors],
	}
}

// stop makes every loop close its sockets and return, and waits for them.
func (s *Server) stop() error {
	s.stopping.Store(true)
	for _, l := range s.loops {
		l.p.Wake()
	}
	s.wg.Wait()
	for _, l := range s.loops {
		if l.closeErr != nil {
			return l.closeErr
		}
	}
	return nil
}

// run is the loop's goroutine: wait for ready sockets, serve them, sweep
// deadlines, publish counters; until Close.
func (l *loop) run() {
	defer l.s.wg.Done()
	poll.LockThread()
	for {
		evs, err := l.p.Wait(l.timeout())
		l.now = int64(time.Since(l.s.epoch))
		if err == nil && l.s.stopping.Load() {
			break
		}
		if err != nil {
			// Not expected from a valid epoll fd; keep the loop alive but
			// do not spin on the error.
			l.logf("targets: epoll wait: %v", err)
			time.Sleep(sweepEvery)
			if l.s.stopping.Load() {
				break
			}
			continue
		}
		if l.hasIncoming.Load() {
			l.takeIncoming()
		}
		for i := range evs {
			fd := poll.FD(&evs[i])
			if fd >= len(l.conns) || l.conns[fd] == nil {
				continue // closed while this batch was being served
			}
			c := l.conns[fd]
			switch c.kind {
			case kindWSListener, kindTCPListener:
				l.accept(c)
			case kindUDP:
				l.udpEvent(c, evs[i].Events)
			default:
				l.connEvent(c, evs[i].Events)
			}
		}
		if l.now >= l.nextSweep && l.needSweep() {
			l.sweep()
		}
		l.publish()
	}
	l.shutdown()
}

// timeout returns how long the next wait may block: until the next sweep if
// anything has a deadline, else for ever.
func (l *loop) timeout() time.Duration {
	if !l.needSweep() {
		return -1
	}
	return time.Duration(max(l.nextSweep-l.now, 0))
}

// needSweep reports whether anything in the loop has a deadline.
func (l *loop) needSweep() bool {
	return l.nHandshake > 0 || l.nLinger > 0 || l.nPausedLn > 0 || (l.s.cfg.IdleTimeout > 0 && l.nOpen > 0)
}

// sweep enforces the handshake, idle and linger deadlines and ends accept pauses.
func (l *loop) sweep() {
	l.nextSweep = l.now + int64(sweepEvery)
	idle := int64(l.s.cfg.IdleTimeout)
	// Backwards: closing a connection moves the last one into its place.
	for i := len(l.list) - 1; i >= 0; i-- {
		c := l.list[i]
		switch c.kind {
		case kindWSHandshake:
			if l.now >= c.deadline {
				l.st[cHandshakeFailures]++
				l.linger(c)
				l.send(c, nil)
			}
		case kindLinger:
			if l.now >= c.deadline {
				l.closeConn(c)
			}
		case kindWS, kindTCP:
			if idle > 0 && l.now-c.last >= idle {
				l.st[cIOErrors]++
				if c.kind == kindTCP {
					l.closeConn(c)
					continue
				}
				l.obuf = appendClose(l.obuf[:0], ws.StatusGoingAway, "idle timeout")
				l.linger(c)
				l.send(c, l.obuf)
				l.obuf = l.obuf[:0]
			}
		case kindWSListener, kindTCPListener:
			if c.paused && l.now >= c.deadline {
				c.paused = false
				l.nPausedLn--
				l.interest(c, poll.In)
			}
		}
	}
}

// shutdown closes every socket the loop owns, and any connection handed to it
// that it had not taken yet, then its poller.
func (l *loop) shutdown() {
	l.mu.Lock()
	l.stopped = true
	queued := l.incoming
	l.incoming = nil
	l.mu.Unlock()
	for _, h := range queued {
		_ = poll.Close(h.fd)
		l.st[cOpen]--
		if h.kind == kindWSHandshake {
			l.st[cHandshakeFailures]++
		}
	}
	for i := len(l.list) - 1; i >= 0; i-- {
		c := l.list[i]
		switch c.kind {
		case kindWSListener, kindTCPListener, kindUDP:
			if err := poll.Close(int(c.fd)); err != nil && l.closeErr == nil {
				l.closeErr = fmt.Errorf("targets: close listener: %w", err)
			}
			l.forget(c)
		case kindWSHandshake:
			l.st[cHandshakeFailures]++ // abandoned, as the portable server counts it
			l.closeConn(c)
		default:
			l.closeConn(c)
		}
	}
	l.publish()
	_ = l.p.Close()
}

// logf logs a rare event, at most once a second per loop.
func (l *loop) logf(format string, args ...any) {
	if l.lastLog != 0 && l.now-l.lastLog < int64(time.Second) {
		return
	}
	l.lastLog = max(l.now, 1)
	l.s.logf(format, args...)
}

// publish adds what the loop has counted since the last publish to its
// published counters.
func (l *loop) publish() {
	for i, v := range l.st {
		if v != 0 {
			l.pub.v[i].Add(v)
			l.st[i] = 0
		}
	}
	if n := int64(l.nOpen); n != l.published {
		l.published = n
		l.pub.conns.Store(n)
	}
}

// accept accepts the connections pending on listener ln and deals them out
// to the loops in turn. When accepting fails for want of resources (file
// descriptors, memory) the listener is paused from 5 ms doubling up to 1 s.
func (l *loop) accept(ln *conn) {
	for range acceptBatch {
		fd, err := poll.Accept(int(ln.fd))
		if err != nil {
			if poll.Again(err) {
				return
			}
			if err == unix.ECONNABORTED {
				continue
			}
			ln.backoff = min(max(2*ln.backoff, int64(5*time.Millisecond)), int64(maxAcceptBackoff))
			l.s.logf("targets: accept: %v; retrying in %v", err, time.Duration(ln.backoff))
			ln.deadline = l.now + ln.backoff
			ln.paused = true
			l.nPausedLn++
			l.interest(ln, 0)
			return
		}
		ln.backoff = 0
		// As net does for accepted TCP connections: replies go out at once.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		l.st[cAccepted]++
		l.st[cOpen]++
		k := kindTCP
		if ln.kind == kindWSListener {
			k = kindWSHandshake
		}
		to := l.s.loops[l.rr%len(l.s.loops)]
		l.rr++
		if to == l {
			if err := l.register(fd, k); err != nil {
				l.logf("targets: epoll add: %v", err)
				_ = poll.Close(fd)
				l.st[cOpen]--
			}
			continue
		}
		if !to.handOff(fd, k) {
			_ = poll.Close(fd)
			l.st[cOpen]--
		}
	}
}

// handOff queues an accepted connection for l, which takes it after its next
// wake-up. It reports false if l has stopped.
func (l *loop) handOff(fd int, k kind) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.incoming = append(l.incoming, handoff{fd, k})
	l.mu.Unlock()
	l.hasIncoming.Store(true)
	l.p.Wake()
	return true
}

// takeIncoming registers the connections handed to l.
func (l *loop) takeIncoming() {
	l.hasIncoming.Store(false)
	l.mu.Lock()
	l.incoming, l.spare = l.spare[:0], l.incoming
	l.mu.Unlock()
	for _, h := range l.spare {
		if err := l.register(h.fd, h.kind); err != nil {
			l.logf("targets: epoll add: %v", err)
			_ = poll.Close(h.fd)
			l.st[cOpen]--
		}
	}
}

// register makes fd one of l's sockets and asks epoll for its input.
func (l *loop) register(fd int, k kind) error {
	var c *conn
	if n := len(l.free); n > 0 {
		c, l.free = l.free[n-1], l.free[:n-1]
	} else {
		c = new(conn)
	}
	*c = conn{fd: int32(fd), idx: int32(len(l.list)), events: poll.In, last: l.now}
	l.setKind(c, k)
	if k == kindWSHandshake {
		c.deadline = l.now + int64(l.s.cfg.HandshakeTimeout)
	}
	if fd >= len(l.conns) {
		grown := make([]*conn, max(fd+1, 2*len(l.conns), 64))
		copy(grown, l.conns)
		l.conns = grown
	}
	l.conns[fd] = c
	l.list = append(l.list, c)
	if err := l.p.Add(fd, poll.In); err != nil {
		l.forget(c)
		return err
	}
	return nil
}

// setKind moves c to kind k, keeping the counts the sweep goes by.
func (l *loop) setKind(c *conn, k kind) {
	switch c.kind {
	case kindWSHandshake:
		l.nHandshake--
	case kindLinger:
		l.nLinger--
	}
	if c.kind >= kindWSHandshake {
		l.nOpen--
	}
	c.kind = k
	switch k {
	case kindWSHandshake:
		l.nHandshake++
	case kindLinger:
		l.nLinger++
	}
	if k >= kindWSHandshake {
		l.nOpen++
	}
}

// forget drops c from l's tables and recycles it; the fd is the caller's.
func (l *loop) forget(c *conn) {
	if c.paused && (c.kind == kindWSListener || c.kind == kindTCPListener) {
		l.nPausedLn--
	}
	l.setKind(c, kindFree)
	l.conns[c.fd] = nil
	last := l.list[len(l.list)-1]
	l.list[c.idx] = last
	last.idx = c.idx
	l.list[len(l.list)-1] = nil
	l.list = l.list[:len(l.list)-1]
	l.pool.put(c.in)
	l.pool.put(c.out)
	*c = conn{}
	l.free = append(l.free, c)
}

// closeConn closes connection c.
func (l *loop) closeConn(c *conn) {
	_ = poll.Close(int(c.fd))
	l.st[cOpen]--
	l.forget(c)
}

// interest registers c for events ev with epoll, if that is a change.
func (l *loop) interest(c *conn, ev uint32) {
	if c.events == ev {
		return
	}
	c.events = ev
	if err := l.p.Mod(int(c.fd), ev); err != nil {
		l.logf("targets: epoll mod: %v", err)
	}
}

// update registers c for what it needs: input unless paused, output while
// anything is queued.
func (l *loop) update(c *conn) {
	var ev uint32
	if !c.paused {
		ev = poll.In
	}
	if c.pending() > 0 {
		ev |= poll.Out
	}
	l.interest(c, ev)
}

// connEvent serves a readiness event on a connection.
func (l *loop) connEvent(c *conn, ev uint32) {
	if ev&poll.Out != 0 && !l.writable(c) {
		return
	}
	if ev&(poll.In|poll.Hup|poll.Err) == 0 {
		return
	}
	if c.paused {
		// Not reading: only a dead socket gets here. Its queue is lost.
		if ev&(poll.Hup|poll.Err) != 0 {
			l.st[cIOErrors]++
			l.closeConn(c)
		}
		return
	}
	l.readable(c)
}

// readable reads what c's peer sent, into the loop's read buffer behind any
// bytes carried over from the last read, and serves it; up to
// maxReadsPerEvent reads while reads fill the buffer.
func (l *loop) readable(c *conn) {
	for range maxReadsPerEvent {
		// An incomplete frame is copied in front of the new bytes (it is
		// at most a header and a control frame); an incomplete upgrade
		// request (up to 16 KiB) has new bytes appended to it instead.
		t := 0
		if c.kind == kindWS {
			t = len(c.in)
		}
		room := len(l.rbuf) - t
		if c.kind != kindLinger {
			room = min(room, l.s.cfg.MaxPending-c.pending()-outSlack)
			if room < minReadRoom {
				c.paused = true
				l.update(c)
				return
			}
		}
		n, err := poll.Read(int(c.fd), l.rbuf[t:t+room])
		if n <= 0 {
			if err != nil && poll.Again(err) {
				return
			}
			l.readEnded(c, err)
			return
		}
		c.last = l.now
		var b []byte
		switch {
		case t > 0:
			copy(l.rbuf, c.in)
			l.dropIn(c)
			b = l.rbuf[:t+n]
		case c.kind == kindWSHandshake && len(c.in) > 0:
			t = len(c.in)
			c.in = l.pool.grow(c.in, n)
			c.in = append(c.in, l.rbuf[:n]...)
			b = c.in
		default:
			b = l.rbuf[:n]
		}
		if !l.input(c, b, t) || n < room {
			return
		}
	}
}

// readEnded closes c after its peer closed (err nil) or a read failed.
func (l *loop) readEnded(c *conn, err error) {
	switch c.kind {
	case kindWSHandshake:
		l.st[cHandshakeFailures]++
	case kindWS:
		if err != nil || c.rem > 0 || len(c.in) > 0 {
			l.st[cIOErrors]++ // reset, or closed in the middle of a frame
		}
	case kindTCP:
		if err != nil {
			l.st[cIOErrors]++
		}
	}
	l.closeConn(c)
}

// input serves b, the bytes read from c; bytes before from were seen by an
// earlier read (only for an upgrade request in parts). It reports false if
// c was closed.
func (l *loop) input(c *conn, b []byte, from int) bool {
	switch c.kind {
	case kindTCP:
		l.st[cBytesIn] += int64(len(b))
		l.st[cBytesOut] += int64(len(b))
		return l.send(c, b)
	case kindLinger:
		return true // discarded
	case kindWSHandshake:
		end := headersEnd(b[:min(len(b), maxHandshakeBytes)], from)
		if end < 0 {
			if len(b) >= maxHandshakeBytes {
				l.st[cHandshakeFailures]++
				l.linger(c)
				return l.send(c, nil)
			}
			if len(c.in) == 0 {
				c.in = append(l.pool.get(len(b)), b...)
			}
			return true
		}
		if !l.upgrade(c, b[:end]) {
			l.st[cHandshakeFailures]++
			l.linger(c)
		}
		b = b[end:]
	}
	if c.kind == kindWS {
		k := l.frames(c, b)
		if c.kind == kindWS && k < len(b) {
			l.keepIn(c, b[k:])
		} else {
			l.dropIn(c)
		}
	} else {
		l.dropIn(c)
	}
	ok := l.send(c, l.obuf)
	l.obuf = l.obuf[:0]
	return ok
}

// keepIn carries b, the unserved end of a read, over to c's next read.
func (l *loop) keepIn(c *conn, b []byte) {
	in := l.pool.get(len(b))
	in = append(in, b...)
	l.dropIn(c) // b may lie in c.in: copy first
	c.in = in
}

// dropIn releases c's carried-over bytes.
func (l *loop) dropIn(c *conn) {
	l.pool.put(c.in)
	c.in = nil
}

// linger starts ending c: what is queued goes out, then the write side is
// shut and input discarded until the peer closes or closeLinger passes.
func (l *loop) linger(c *conn) {
	l.dropIn(c)
	l.setKind(c, kindLinger)
	c.deadline = l.now + int64(closeLinger)
	c.paused = false
	c.rem = 0
	l.update(c)
}

// send writes b to c with one write, first publishing the counters so that
// a peer that has its reply finds it counted, and queues what the socket does
// not take. A lingering connection whose queue is empty gets its write side
// shut. It reports false if c was closed.
func (l *loop) send(c *conn, b []byte) bool {
	if len(b) > 0 {
		if c.pending() > 0 {
			l.enqueue(c, b)
			return true
		}
		l.publish()
		n, err := poll.Write(int(c.fd), b)
		if err != nil && !poll.Again(err) {
			if c.kind != kindLinger {
				l.st[cIOErrors]++
			}
			l.closeConn(c)
			return false
		}
		n = max(n, 0)
		if n > 0 {
			c.last = l.now
		}
		if n < len(b) {
			l.enqueue(c, b[n:])
			l.update(c)
			return true
		}
	}
	if c.kind == kindLinger && !c.shut && c.pending() == 0 {
		c.shut = true
		_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
	}
	return true
}

// enqueue appends b to c's queue. Reads are sized so that the queue never
// exceeds MaxPending.
func (l *loop) enqueue(c *conn, b []byte) {
	if c.out == nil {
		c.out = l.pool.get(len(b))
	} else if cap(c.out)-len(c.out) < len(b) && c.off > 0 {
		c.out = c.out[:copy(c.out, c.out[c.off:])]
		c.off = 0
	}
	c.out = l.pool.grow(c.out, len(b))
	c.out = append(c.out, b...)
	if p := int64(c.pending()); p > l.pub.peakQueued.Load() {
		l.pub.peakQueued.Store(p)
	}
}

// writable writes c's queue. It resumes reading once the queue is down to
// half of MaxPending, and shuts a lingering connection's write side once it
// is empty. It reports false if c was closed.
func (l *loop) writable(c *conn) bool {
	if c.pending() > 0 {
		n, err := poll.Write(int(c.fd), c.out[c.off:])
		if err != nil && !poll.Again(err) {
			if c.kind != kindLinger {
				l.st[cIOErrors]++
			}
			l.closeConn(c)
			return false
		}
		if n > 0 {
			c.last = l.now
			c.off += n
		}
		if c.pending() == 0 {
			l.pool.put(c.out)
			c.out, c.off = nil, 0
		}
	}
	if c.paused && c.pending() <= l.s.cfg.MaxPending/2 {
		c.paused = false
	}
	l.update(c)
	return l.send(c, nil)
}

// bufPool keeps a loop's free buffers by power-of-two size, from 256 bytes
// up, holding at most poolBytes in all.
type bufPool struct {
	free  [40][][]byte
	bytes int
}

// class returns the size class of an n-byte buffer.
func class(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// get returns an empty buffer with room for at least n bytes.
func (p *bufPool) get(n int) []byte {
	c := class(n)
	if k := len(p.free[c]); k > 0 {
		b := p.free[c][k-1]
		p.free[c] = p.free[c][:k-1]
		p.bytes -= cap(b)
		return b
	}
	return make([]byte, 0, 1<<(c+minBufShift))
}

// put returns b to the pool (nil is ignored).
func (p *bufPool) put(b []byte) {
	if cap(b) == 0 || p.bytes+cap(b) > poolBytes {
		return
	}
	c := class(cap(b))
	if cap(b) != 1<<(c+minBufShift) {
		return // not one of ours
	}
	p.bytes += cap(b)
	p.free[c] = append(p.free[c], b[:0])
}

// grow returns b with room for n more bytes, moved to a bigger pooled buffer
// if need be.
func (p *bufPool) grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := append(p.get(len(b)+n), b...)
	p.put(b)
	return nb
}
