package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/rooms"
	"github.com/sockbench/sockbench/internal/wire"
)

// base is what every engine shares: the plan, the clock, the recorders, the
// published send schedule and the count of messages awaited.
type base struct {
	cfg   Config
	p     *plan.Plan
	clk   Clock
	set   *metrics.Set
	sched atomic.Pointer[schedule]
	// onPublish, if set, runs after each new schedule is published (under pubMu).
	onPublish func()
	pubMu     sync.Mutex

	ids         atomic.Uint32  // connection ids handed out
	outstanding atomic.Int64   // messages sent and not yet answered or lost
	owing       atomic.Int64   // open-loop connections with sends still due before the stop
	rooms       *rooms.Tracker // broadcast accounting; nil for echo plans
}

func newBase(cfg Config) base {
	return base{cfg: cfg, p: cfg.Plan, clk: cfg.Clock, set: cfg.Set, rooms: cfg.Rooms}
}

// newID returns the next connection id (0, 1, ...).
func (b *base) newID() uint32 { return b.ids.Add(1) - 1 }

// Outstanding implements Engine: messages awaited plus connections that
// still owe scheduled sends (running late at the end of the run).
// In a broadcast run, publishes not yet settled are awaited too.
func (b *base) Outstanding() int64 {
	n := b.outstanding.Load() + b.owing.Load()
	if b.rooms != nil {
		n += b.rooms.Pending()
	}
	return n
}

func (b *base) publish(f func(s *schedule) *schedule) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	old := b.sched.Load()
	b.sched.Store(f(old))
	close(old.changed)
	if b.onPublish != nil {
		b.onPublish()
	}
}

// Pace implements Engine. fromNs may be in the future: the regime is then
// known to every connection before it begins.
func (b *base) Pace(fromNs int64, ph plan.Phase) {
	r := regimeOf(b.p, fromNs, ph)
	b.publish(func(s *schedule) *schedule { return s.with(r) })
}

// Stop implements Engine; atNs may be in the future.
func (b *base) Stop(atNs int64) {
	b.publish(func(s *schedule) *schedule { return s.stopped(atNs) })
}

func (b *base) logf(format string, args ...any) {
	if b.cfg.Logf != nil {
		b.cfg.Logf(format, args...)
	}
}

// msgs is one connection's message accounting, the same in every engine:
// sequence numbers, the ring of messages awaited, the open-loop position in
// the schedule, and what the target held back. It does no locking; the
// goroutine engine guards it with its connection's mutex, an event loop owns
// it outright.
type msgs struct {
	b           *base
	id          uint32
	rec         *metrics.Recorder
	codec       wire.Codec
	text        bool
	udp         bool
	connectedAt int64
	sent        uint64  // next sequence number to send
	last        int64   // intended time of the last open-loop send; -1: none yet
	maxSeen     int64   // highest sequence number answered
	ring        ring    // messages awaiting replies
	payload     *[]byte // padded payload template: the connection's own, or its event loop's
	pong        []byte  // payload of the latest ping, to answer
	pongDue     bool
	heldUntil   int64 // ns: the target held sends back until then
	windowHit   bool  // the last send attempt found the window full
	// Broadcast roles: a subscriber has a member; a publisher (or a chat
	// member) publishes; a subscriber that does not publish is silent.
	member    *rooms.Member
	publishes bool
	silent    bool
	scratch   []byte // room protocol messages are built here, then framed
}

// initialRing is a new connection's ring size; it grows on demand, so that
// an idle connection stays small.
const initialRing = 2

// init readies m for connection id; payload is the buffer its messages are
// built in, which connections that never send at the same time may share.
func (m *msgs) init(b *base, id uint32, rec *metrics.Recorder, connectedAt int64, payload *[]byte) {
	*m = msgs{
		b: b, id: id, rec: rec, codec: newCodec(b.p, id), payload: payload,
		udp:         b.p.Target.Transport == plan.UDP,
		connectedAt: connectedAt, last: -1, maxSeen: -1,
	}
	m.text = m.codec.Text()
	m.ring.init(initialRing)
	if t := b.rooms; t != nil {
		m.member = t.Member(id)
		m.publishes = m.member == nil || b.p.Broadcast.Chat
		m.silent = !m.publishes
	}
}

func (m *msgs) ensurePayload(size int) {
	if len(*m.payload) != size {
		*m.payload = make([]byte, size)
		wire.Pad(*m.payload)
	}
}

// appendMsg frames the next message into buf and accounts it as sent at
// now, scheduled for intended.
func (m *msgs) appendMsg(buf []byte, intended, now int64) []byte {
	before := len(buf)
	buf = m.frame(buf, intended, now)
	m.rec.SentAfter(intended, m.heldUntil, now, len(buf)-before)
	return buf
}

// frame frames the next message into buf and puts it in the ring as sent
// at now, scheduled for intended; the caller records it.
func (m *msgs) frame(buf []byte, intended, now int64) []byte {
	h := wire.Header{ConnID: m.id, Seq: m.sent, Intended: intended, Sent: now}
	if m.text {
		h.PutText(*m.payload)
	} else {
		h.Put(*m.payload)
	}
	if m.publishes {
		// A publish: no reply is awaited; its deliveries are the rooms
		// tracker's to account.
		var room int
		m.scratch, room = m.b.rooms.AppendPublish(m.scratch[:0], m.id, m.sent, *m.payload)
		buf = m.codec.Append(buf, m.scratch)
		m.b.rooms.Published(room, intended)
		m.sent++
		return buf
	}
	buf = m.codec.Append(buf, *m.payload)
	m.ring.add(m.sent, intended, now, m.b.set.Win.Measured(intended))
	m.sent++
	m.b.outstanding.Add(1)
	return buf
}

// appendPong frames the answer to the latest ping, if one is due.
func (m *msgs) appendPong(buf []byte) []byte {
	if !m.pongDue {
		return buf
	}
	m.pongDue = false
	return m.codec.(*wire.WSClient).AppendFrame(buf, ws.OpPong, m.pong)
}

// appendControl frames the next join or leave a subscriber owes the
// server, if any, sent at now, and reports whether there was one.
func (m *msgs) appendControl(buf []byte, now int64) ([]byte, bool) {
	if m.member == nil {
		return buf, false
	}
	var ok bool
	m.scratch, ok = m.member.AppendControl(m.scratch[:0], now)
	if !ok {
		return buf, false
	}
	return m.codec.Append(buf, m.scratch), true
}

// appendControls frames every join or leave due (stream transports).
func (m *msgs) appendControls(buf []byte, now int64) []byte {
	for {
		var ok bool
		if buf, ok = m.appendControl(buf, now); !ok {
			return buf
		}
	}
}

// tick lets a subscriber make a repeated join or leave due (UDP: keep-alive,
// or a join or leave not answered); it reports whether one is due.
func (m *msgs) tick(now int64) bool { return m.member != nil && m.member.Tick(now) }

// appendGoodbye frames a WebSocket close frame with code 1000 (normal
// closure); nothing for other transports.
func (m *msgs) appendGoodbye(buf []byte) []byte {
	wc, ok := m.codec.(*wire.WSClient)
	if !ok {
		return buf
	}
	return wc.AppendFrame(buf, ws.OpClose, []byte{0x03, 0xe8})
}

// expire counts messages unanswered past the loss timeout as lost.
func (m *msgs) expire(now int64) {
	n, measured := m.ring.expire(now - int64(m.b.p.Timeout))
	if n > 0 {
		m.b.outstanding.Add(-n)
		m.rec.Lost(n-measured, false)
		m.rec.Lost(measured, true)
	}
}

// settle does the end-of-connection accounting: messages past the loss
// timeout are lost; the rest are lost if the connection dropped and in flight
// if sockbench closed it. With unsent, the measured open-loop sends it still
// owed are counted as unsent.
func (m *msgs) settle(now int64, dropped, unsent, retiring bool) {
	m.expire(now)
	pending, measured := m.ring.drop()
	m.b.outstanding.Add(-pending)
	if dropped {
		m.rec.Lost(pending-measured, false)
		m.rec.Lost(measured, true)
	} else {
		m.rec.InFlight(pending-measured, false)
		m.rec.InFlight(measured, true)
		m.rec.ConnClosed()
	}
	if (unsent || dropped) && m.b.p.Mode == plan.Open && !retiring {
		m.rec.Unsent(m.owed())
	}
	if m.member != nil {
		m.member.End()
	}
	m.b.set.AddOpen(-1)
}

// owed counts the measured open-loop sends still scheduled after the last
// one sent.
func (m *msgs) owed() int64 {
	s := m.b.sched.Load()
	if s.stopAt == math.MaxInt64 || m.silent {
		return 0
	}
	var n int64
	last := m.last
	for {
		t, _, ok := s.next(m.id, last, m.connectedAt)
		if !ok {
			return n
		}
		if m.b.set.Win.Measured(t) {
			n++
		}
		last = t
	}
}

// parse handles every complete message in b, received at now, and returns
// the bytes used, and whether the sender should look again (a reply freed a
// slot, or a pong is due). lk, if not nil, guards m's state; the recorder is
// called outside it.
func (m *msgs) parse(b []byte, now int64, lk *sync.Mutex) (int, bool, error) {
	off := 0
	wake := false
	for off < len(b) {
		op, payload, used, err := m.codec.Next(b[off:])
		if err != nil {
			m.reject(result.RejectUnparsed, b[off:], now, err.Error())
			return off, wake, &metrics.ProtocolError{Err: err} // counted when the connection drops
		}
		if used == 0 {
			break
		}
		off += used
		switch op {
		case wire.OpData:
			if m.reply(payload, used, now, lk) {
				wake = true
			}
		case wire.OpPing:
			m.rec.Bytes(used)
			lock(lk)
			m.pong = append(m.pong[:0], payload...)
			m.pongDue = true
			unlock(lk)
			wake = true
		case wire.OpPong:
			m.rec.Bytes(used)
		case wire.OpClose:
			m.rec.Bytes(used)
			return off, wake, errPeerClose
		}
	}
	return off, wake, nil
}

func lock(lk *sync.Mutex) {
	if lk != nil {
		lk.Lock()
	}
}

func unlock(lk *sync.Mutex) {
	if lk != nil {
		lk.Unlock()
	}
}

// reject keeps msg, received at now, among the run's rejected messages
// (while it keeps any): what the target sent that could not be used.
func (m *msgs) reject(kind string, msg []byte, now int64, reason string) {
	if m.b.set.Rejecting() {
		m.b.set.Reject(kind, m.id, now, msg, reason)
	}
}

// unexpected counts a reply, received at now, that answers no message: in
// the window if it arrived after the window began (it has no message whose
// intended time could say). A reply that could not be parsed is a protocol
// error too. The caller counts its bytes.
func (m *msgs) unexpected(now int64, unparsed bool) {
	if unparsed {
		m.rec.Error(metrics.ErrProtocol)
	}
	m.rec.Anomaly(metrics.Unexpected, m.b.set.Win.Measured(now))
}

// reply accounts one data message of n bytes received at now and reports
// whether the sender should look again: it answered a message awaited
// (freeing a slot), or a join or leave is due.
func (m *msgs) reply(payload []byte, n int, now int64, lk *sync.Mutex) bool {
	if m.b.rooms != nil {
		return m.roomReply(payload, n, now, lk)
	}
	var h wire.Header
	var err error
	if m.text {
		err = h.DecodeText(payload)
	} else {
		err = h.Decode(payload)
	}
	if err != nil {
		m.reject(result.RejectUnparsed, payload, now, err.Error())
		m.rec.Bytes(n)
		m.unexpected(now, true)
		return false
	}
	if h.Flags&wire.FlagProbe != 0 {
		m.rec.Bytes(n)
		return false
	}
	lock(lk)
	sl, ok := m.accept(&h, payload, now)
	unlock(lk)
	if !ok {
		m.rec.Bytes(n)
		return false
	}
	m.rec.Received(sl.intended, sl.sent, now, n)
	return true
}

// accept matches a reply (its header h and payload), received at now, to
// the message it answers and reports whether it is a latency sample, with
// that message's send times; anything else is counted, in the window if the
// message it answers was measured.
func (m *msgs) accept(h *wire.Header, payload []byte, now int64) (slot, bool) {
	if h.ConnID != m.id || h.Seq >= m.sent {
		if m.b.set.Rejecting() {
			m.reject(result.RejectUnmatched, payload, now, fmt.Sprintf(
				"a measurement header for connection %d, sequence number %d, on connection %d, which has sent %d messages: does the target send each reply to the connection the message came on?",
				h.ConnID, h.Seq, m.id, m.sent))
		}
		m.unexpected(now, false)
		return slot{}, false
	}
	outcome, sl := m.ring.answerSlot(h.Seq)
	measured := m.ring.measured(h.Seq)
	switch outcome {
	case answered:
		m.b.outstanding.Add(-1)
		if int64(h.Seq) < m.maxSeen {
			m.rec.Anomaly(metrics.Reordered, measured)
		}
		m.maxSeen = max(m.maxSeen, int64(h.Seq))
		return sl, true
	case wasAnswered:
		m.rec.Anomaly(metrics.Duplicate, measured)
	default:
		m.rec.Anomaly(metrics.Late, measured)
	}
	return slot{}, false
}

// roomReply accounts one room protocol message of n bytes received at now
// (a broadcast run) and reports whether a join or leave is now due.
func (m *msgs) roomReply(payload []byte, n int, now int64, lk *sync.Mutex) bool {
	var rm wire.RoomMsg
	var h wire.Header
	err := wire.ParseRoom(payload, &rm)
	if err == nil && rm.Op == wire.RoomDeliver {
		err = h.Decode(rm.Payload)
	}
	if err != nil {
		m.reject(result.RejectUnparsed, payload, now, err.Error())
		m.rec.Bytes(n)
		m.unexpected(now, true)
		return false
	}
	t := m.b.rooms
	ok, due := false, false
	lock(lk)
	switch {
	case m.member == nil && rm.Op == wire.RoomDeliver:
		t.Extra(t.Room(rm.Room), h.Intended) // a publisher is in no room
	case m.member == nil:
	case rm.Op == wire.RoomDeliver:
		ok = m.member.Deliver(rm.Room, rm.Seq, h.ConnID, h.Intended, now)
		due = m.member.Due()
	case rm.Op == wire.RoomJoined:
		ok = m.member.Joined(rm.Room, rm.Seq)
	case rm.Op == wire.RoomLeft:
		ok = m.member.Left(rm.Room, rm.Seq)
		due = m.member.Due()
	}
	unlock(lk)
	switch {
	case ok && rm.Op == wire.RoomDeliver:
		m.rec.Received(h.Intended, h.Sent, now, n)
	case ok, rm.Op == wire.RoomDeliver: // duplicated, extra and late are the tracker's
		m.rec.Bytes(n)
	default: // a reply to nothing sockbench asked
		if m.b.set.Rejecting() {
			m.reject(result.RejectUnmatched, payload, now, fmt.Sprintf("a room %q message that answers nothing this connection asked", byte(rm.Op)))
		}
		m.rec.Bytes(n)
		m.unexpected(now, false)
	}
	return due
}

var errPeerClose = &peerCloseError{}

type peerCloseError struct{}

func (*peerCloseError) Error() string { return "websocket close frame from the target" }
func (*peerCloseError) Unwrap() error { return net.ErrClosed }

// appendDue frames up to limit open-loop messages due by now (within the
// max_inflight window) into buf and returns how many.
func (m *msgs) appendDue(buf []byte, s *schedule, now int64, limit int) ([]byte, int) {
	if m.silent {
		return buf, 0
	}
	n := 0
	window := m.b.p.MaxInFlight
	for n < limit {
		next, r, ok := s.next(m.id, m.last, m.connectedAt)
		if !ok || next > now {
			break
		}
		if window > 0 && m.ring.pending >= window {
			m.windowHit = true
			break
		}
		if m.windowHit {
			m.windowHit = false
			m.heldUntil = now // the window reopened now
		}
		m.ensurePayload(r.size)
		buf = m.appendMsg(buf, next, now)
		m.last = next
		n++
	}
	return buf, n
}

// appendTopUp frames closed-loop messages into buf, up to limit, until
// r.inflight are outstanding. They go out together in one write at now,
// which is both their intended and their send time.
func (m *msgs) appendTopUp(buf []byte, r regime, limit int, now int64) ([]byte, int) {
	m.ensurePayload(r.size)
	before := len(buf)
	n := 0
	for n < limit && m.ring.pending < r.inflight {
		buf = m.frame(buf, now, now)
		n++
	}
	m.rec.SentBatch(now, n, len(buf)-before)
	return buf, n
}

// trim is the scale-down half of Scale: under mu, it cuts the open
// connections *conns to the first n and returns how many were open and the
// ones cut, for the caller to retire.
func trim[T any](mu *sync.Mutex, conns *[]T, n int) (open int, cut []T) {
	mu.Lock()
	defer mu.Unlock()
	open = len(*conns)
	if n < open {
		cut = append(cut, (*conns)[n:]...)
		*conns = (*conns)[:n]
	}
	return open, cut
}

// scaleUp opens need connections, at most rate per second (0: no limit),
// each dialled by open in its own goroutine with an id from nextID. It
// returns when every dial it started has finished, or ctx's error.
func scaleUp(ctx context.Context, need int, rate float64, nextID func() uint32, open func(context.Context, uint32)) error {
	if need <= 0 {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
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
					return ctx.Err()
				}
			}
		}
		id := nextID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			open(ctx, id)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// dialRecorded dials connection id and records the outcome in rec: the
// connect time (TCP connect plus handshake) for ws and tcp, an open for udp,
// or a failure. It returns the connection, rec, and when it was ready.
func dialRecorded(ctx context.Context, b *base, id uint32, rec *metrics.Recorder) (dialed, *metrics.Recorder, int64, bool) {
	t0 := b.clk.Now()
	d, err := dial(ctx, b.p.Target, b.p.ConnectTimeout, id)
	if err != nil {
		if ctx.Err() == nil {
			rec.ConnFailed(metrics.Classify(err))
			b.logf("connection %d: %v", id, err)
			var he *metrics.HandshakeError
			if errors.As(err, &he) && b.set.Rejecting() {
				b.set.Reject(result.RejectHandshake, id, b.clk.Now(), he.Answer, he.Error())
			}
		}
		return dialed{}, rec, 0, false
	}
	at := b.clk.Now()
	if b.p.Target.Transport != plan.UDP {
		rec.Connected(at - t0)
	} else {
		rec.Opened()
	}
	return d, rec, at, true
}
