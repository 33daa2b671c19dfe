//go:build linux && !targets_goroutine

package targets

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/sockbench/sockbench/internal/poll"
	"github.com/sockbench/sockbench/internal/wire"
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
	kindWSHandshake             // accepted, upgrade request not complete yet
	kindWS                      // upgraded: frames
	kindTCPNew                  // TCP, accepted, no byte read yet: its first byte picks kindTCP or kindTCP32
	kindTCP                     // TCP byte echo
	kindTCP32                   // TCP len32 frames: room requests served, other frames echoed
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
	cDeliveries
	cDrops
	nCounters
)

// backend is the epoll server: Config.Loops event loops, and a thread of
// its own for the UDP socket.
type backend struct {
	loops       []*loop
	udp         *udpServer // nil if UDP is off
	udpCloseErr error      // from closing the UDP socket
	rooms       roomTable
	epoch       time.Time   // loops' clocks count from here
	stopping    atomic.Bool // Close has begun
	wg          sync.WaitGroup
	release     func() // gives back the Ps reserved for the loops and the UDP thread (poll.Reserve)
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
	id    int // index in the server's loops
	p     *poll.Poller
	conns []*conn // by fd; nil = not this loop's
	list  []*conn // every socket this loop owns
	free  []*conn // recycled conn structs
	pool  bufPool
	rbuf  []byte // the read buffer
	obuf  []byte // replies to one read, written with one write
	hs    upgradeIO

	upgrader ws.Upgrader  // records the request path in hsPath
	hsPath   string       // the path of the upgrade in progress
	cur      *conn        // the connection whose input is being served; its replies are in obuf
	msg      wire.RoomMsg // the room message being served
	dmsg     wire.RoomMsg // the deliver message being encoded
	key      []byte       // room key scratch

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

	mu       sync.Mutex     // guards the inboxes' items and stopped
	incoming inbox[handoff] // connections accepted by other loops
	fan      inbox[fanItem] // publishes with members on l, from other loops
	stopped  bool
	closeErr error // from closing this loop's listeners
}

// start binds the listeners, builds the loops, gives each listener to one and
// starts them, and starts the UDP thread.
func (s *Server) start() error {
	wsLn, tcpLn, udpConn, err := s.listenAll()
	if err != nil {
		return err
	}
	s.epoch = time.Now()
	s.rooms.m = make(map[string]*room)
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
	udpFD := -1
	if udpConn != nil {
		if derr != nil {
			_ = udpConn.Close()
		} else {
			udpFD, derr = poll.Detach(udpConn)
		}
	}
	fail := func(err error) error {
		for _, so := range socks {
			_ = poll.Close(so.fd)
		}
		if udpFD >= 0 {
			_ = poll.Close(udpFD)
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
		l := &loop{s: s, id: len(s.loops), p: p, rbuf: make([]byte, readBufferSize), pub: new(loopStats)}
		l.upgrader.OnRequest = l.onRequest
		s.loops = append(s.loops, l)
	}
	for i, so := range socks {
		if err := s.loops[i%len(s.loops)].register(so.fd, so.kind); err != nil {
			return fail(fmt.Errorf("targets: epoll: %w", err))
		}
	}
	threads := len(s.loops)
	if udpFD >= 0 {
		if s.udp, err = newUDPServer(s, udpFD); err != nil {
			return fail(fmt.Errorf("targets: udp: %w", err))
		}
		threads++
	}
	s.release = poll.Reserve(threads)
	s.wg.Add(threads)
	for _, l := range s.loops {
		go l.run()
	}
	if s.udp != nil {
		go s.udp.run()
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
	add := func(pub *loopStats) {
		for i := range v {
			v[i] += pub.v[i].Load()
		}
	}
	for _, l := range s.loops {
		add(l.pub)
	}
	if s.udp != nil {
		add(s.udp.pub)
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
		Rooms:               s.rooms.nRooms.Load(),
		Members:             s.rooms.nMembers.Load(),
		Deliveries:          v[cDeliveries],
		Drops:               v[cDrops],
	}
}

// stop makes every loop, and the UDP thread, close its sockets and return,
// and waits for them.
func (s *Server) stop() error {
	s.stopping.Store(true)
	for _, l := range s.loops {
		l.p.Wake()
	}
	if s.udp != nil {
		if err := poll.Unblock(s.udp.fd); err != nil {
			s.logf("targets: udp shutdown: %v", err) // it still stops within udpTimeout
		}
	}
	s.wg.Wait()
	if s.release != nil {
		s.release()
	}
	for _, l := range s.loops {
		if l.closeErr != nil {
			return l.closeErr
		}
	}
	return s.udpCloseErr
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
		if l.incoming.has.Load() {
			l.takeIncoming()
		}
		if l.fan.has.Load() {
			l.takeFanout()
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
		case kindWS, kindTCPNew, kindTCP, kindTCP32:
			if idle > 0 && l.now-c.last >= idle {
				l.st[cIOErrors]++
				if c.kind != kindWS {
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
	queued := l.incoming.items
	l.incoming.items = nil
	l.fan.items = nil
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
		case kindWSListener, kindTCPListener:
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
		k := kindTCPNew
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

// inbox is a queue other goroutines hand items to for a loop, which takes
// them after its next wake-up; items is guarded by the loop's mu.
type inbox[T any] struct {
	has          atomic.Bool // items is not empty
	items, spare []T
}

// put queues v in q, an inbox of l, and wakes l. It reports false if l has
// stopped.
func put[T any](l *loop, q *inbox[T], v T) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	l.mu.Unlock()
	q.has.Store(true)
	l.p.Wake()
	return true
}

// take returns the items put in q, an inbox of l, since the last take; they
// stay valid until the next take.
func take[T any](l *loop, q *inbox[T]) []T {
	q.has.Store(false)
	l.mu.Lock()
	q.items, q.spare = q.spare[:0], q.items
	l.mu.Unlock()
	return q.spare
}

// handOff queues an accepted connection for l, which takes it after its next
// wake-up. It reports false if l has stopped.
func (l *loop) handOff(fd int, k kind) bool { return put(l, &l.incoming, handoff{fd, k}) }

// takeIncoming registers the connections handed to l.
func (l *loop) takeIncoming() {
	for _, h := range take(l, &l.incoming) {
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
// A connection that was ever in a room is not recycled: member slices
// captured by publishes may still point to it, and find it closed.
func (l *loop) forget(c *conn) {
	if c.rooms != nil {
		l.leaveAll(c)
	}
	recycle := !c.roomed
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
	if recycle {
		l.free = append(l.free, c)
	}
}

// closeConn closes connection c.
func (l *loop) closeConn(c *conn) {
	_ = poll.Close(int(c.fd))
	l.st[cOpen]--
	l.forget(c)
}

// defaultLoops is one loop per P the process has for its own work.
func defaultLoops() int { return poll.CPUs() }
