//go:build linux && !targets_goroutine

package targets

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/wire"
)

const (
	// maxRoomsPerConn bounds the rooms one connection may be a member of;
	// a join beyond it is refused with close 1008.
	maxRoomsPerConn = 256
	// maxPooledFanout is the largest delivery buffer kept for reuse, in bytes.
	maxPooledFanout = 64 << 10
	// maxIdleRooms bounds the rooms without members a room table keeps
	// (each keeps its sequence counter): past it, the room that has been
	// empty longest is forgotten, and a later join starts it again at 0.
	maxIdleRooms = 1 << 20
)

// roomTable is the server's WebSocket and TCP rooms, keyed by transport,
// namespace and name (UDP rooms are the UDP thread's own: udpRooms). The map
// and the idle list change under mu; publishes look rooms up under the read
// lock. A room stays in the table when its last member leaves, so that its
// sequence numbers are never reused (idleRooms).
type roomTable struct {
	mu       sync.RWMutex
	m        map[string]*room
	idle     idleRooms    // rooms without members, under mu
	nRooms   atomic.Int64 // rooms with members
	nMembers atomic.Int64 // memberships
}

// idleRooms lists the rooms of a table that have no members, in the order
// they became empty, and bounds them: a client's room sequence numbers must
// not be reused while it runs, so a room keeps its counter when it empties,
// but clients joining ever new names must not grow the table without end.
type idleRooms struct {
	head, tail *idleLink // the oldest, the newest
	n          int
	max        int // 0: maxIdleRooms (tests set less)
}

// idleLink is a room's place in its table's idleRooms while it has no
// members, and its key, to forget it by.
type idleLink struct {
	key        string
	prev, next *idleLink
}

// push lists x, a room that has just lost its last member, as the newest.
// If that makes too many, it unlists the oldest and returns it: the caller
// removes that room from its table.
func (q *idleRooms) push(x *idleLink) (evict *idleLink) {
	x.prev, x.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = x
	} else {
		q.head = x
	}
	q.tail = x
	q.n++
	if q.n > cmp.Or(q.max, maxIdleRooms) {
		evict = q.head
		q.remove(evict)
	}
	return evict
}

// remove unlists x, a listed room (a member has joined it, or it goes).
func (q *idleRooms) remove(x *idleLink) {
	if x.prev != nil {
		x.prev.next = x.next
	} else {
		q.head = x.next
	}
	if x.next != nil {
		x.next.prev = x.prev
	} else {
		q.tail = x.prev
	}
	x.prev, x.next = nil, nil
	q.n--
}

// room is one room: its sequence counter and its members, per loop.
type room struct {
	idleLink     // key: roomKey (name length, name, transport tag, namespace)
	n        int // members, under the table's mu; 0: listed in the table's idle

	mu  sync.Mutex
	seq uint64 // the next publish's room sequence number
	// members[i] are the members on loop i. Both levels are immutable:
	// a join or leave replaces them (copy-on-write), so a publish captures
	// them under mu and reads them without it. nil while n is 0.
	members [][]*conn
}

// fanout is one publish's deliver frame (WebSocket or len32 header, and D
// message; a room's members all have one transport),
// encoded once and shared by every loop that has members, which release it
// when they have written it; the last returns it to fanoutPool.
type fanout struct {
	b    []byte
	refs atomic.Int32
}

var fanoutPool = sync.Pool{New: func() any { return new(fanout) }}

func (f *fanout) release() {
	if f.refs.Add(-1) == 0 && cap(f.b) <= maxPooledFanout {
		fanoutPool.Put(f)
	}
}

// fanItem is a publish handed to the loop that owns members.
type fanItem struct {
	f       *fanout
	members []*conn
	skip    *conn // the publisher, unless it asked for its own publish
}

// isRoomOp reports whether a binary message, len32 frame or datagram
// starting with b is a room protocol request; anything else is echoed.
func isRoomOp(b byte) bool {
	switch wire.RoomOp(b) {
	case wire.RoomJoin, wire.RoomLeave, wire.RoomPublish, wire.RoomEcho:
		return true
	}
	return false
}

// onRequest records the request path of the upgrade in progress: the
// connection's namespace. "/" is not allocated.
func (l *loop) onRequest(uri []byte) error {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if string(uri) == "/" {
		l.hsPath = "/"
	} else {
		l.hsPath = string(uri)
	}
	return nil
}

// appendRoomKey appends the key of room name in namespace ns of a
// transport (tag) to dst: the name's length, the name, the tag, the
// namespace.
func appendRoomKey[S string | []byte](dst []byte, name []byte, tag byte, ns S) []byte {
	return append(append(append(append(dst, byte(len(name))), name...), tag), ns...)
}

// roomKey builds, in the loop's scratch buffer, the table key of the room
// m (a J, L or P from c) names. Rooms are per transport: a WebSocket
// connection's namespace is its request path, a TCP connection's the ns
// field of m.
func (l *loop) roomKey(c *conn, m *wire.RoomMsg) []byte {
	if c.kind == kindWS {
		l.key = appendRoomKey(l.key[:0], m.Room, 'w', c.ns)
	} else {
		l.key = appendRoomKey(l.key[:0], m.Room, 't', m.NS)
	}
	return l.key
}

// appendFrameHeader appends the header of an n-byte message to c in c's
// framing (WebSocket binary frame, or len32) to dst.
func appendFrameHeader(dst []byte, c *conn, n int) []byte {
	if c.kind == kindTCP32 {
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return appendHeader(dst, true, ws.OpBinary, n)
}

// refuse ends c for a bad room request: a WebSocket connection gets a close
// frame with code and reason, a TCP one is closed once its replies so far
// are written. Both count as protocol errors.
func (l *loop) refuse(c *conn, code ws.StatusCode, reason string) {
	if c.kind == kindWS {
		l.fail(c, code, reason)
		return
	}
	l.st[cProtocolErrors]++
	l.linger(c)
}

// roomFrame serves payload, the whole (unmasked) payload of a room message
// from c, a WebSocket or TCP len32 connection, appending the reply, if any,
// to the loop's output.
func (l *loop) roomFrame(c *conn, payload []byte) {
	m := &l.msg
	if err := wire.ParseRoom(payload, m); err != nil {
		l.refuse(c, ws.StatusInvalidFramePayloadData, err.Error())
		return
	}
	switch m.Op {
	case wire.RoomJoin:
		from, ok := l.join(c, m)
		if !ok {
			l.refuse(c, ws.StatusPolicyViolation, "too many rooms")
			return
		}
		l.roomReply(c, wire.RoomJoined, m.Room, from)
	case wire.RoomLeave:
		l.roomReply(c, wire.RoomLeft, m.Room, l.leave(c, m))
	case wire.RoomPublish:
		l.publishRoom(c, m)
	case wire.RoomEcho:
		n := len(l.obuf)
		l.obuf = appendFrameHeader(l.obuf, c, len(payload))
		l.obuf = append(l.obuf, payload...)
		if c.kind == kindWS {
			l.st[cMessages]++
			l.st[cBytesOut] += int64(len(payload))
		} else {
			l.st[cBytesOut] += int64(len(l.obuf) - n) // TCP: stream bytes
		}
	}
}

// roomReply appends a joined or left message to c to the loop's output.
func (l *loop) roomReply(c *conn, op wire.RoomOp, name []byte, seq uint64) {
	l.obuf = appendFrameHeader(l.obuf, c, 10+len(name))
	l.obuf, _ = wire.AppendRoom(l.obuf, &wire.RoomMsg{Op: op, Room: name, Seq: seq})
}

// join makes c a member of the room m names and returns the room's next
// sequence number. It reports false if c is in too many rooms. Joining a
// room c is in already changes nothing.
func (l *loop) join(c *conn, m *wire.RoomMsg) (uint64, bool) {
	t := &l.s.rooms
	key := l.roomKey(c, m)
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.m[string(key)]
	if r != nil && slices.Contains(c.rooms, r) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.seq, true
	}
	if len(c.rooms) >= maxRoomsPerConn {
		return 0, false
	}
	switch {
	case r == nil:
		r = &room{idleLink: idleLink{key: string(key)}}
		t.m[r.key] = r
		t.nRooms.Add(1)
	case r.n == 0: // empty: it goes on from its sequence number
		t.idle.remove(&r.idleLink)
		t.nRooms.Add(1)
	}
	r.mu.Lock()
	nm := slices.Clone(r.members)
	if nm == nil {
		nm = make([][]*conn, len(l.s.loops))
	}
	nm[l.id] = append(slices.Clip(nm[l.id]), c)
	r.members = nm
	from := r.seq
	r.mu.Unlock()
	r.n++
	t.nMembers.Add(1)
	c.rooms = append(c.rooms, r)
	c.roomed = true
	return from, true
}

// leave takes c out of the room m names and returns the room's next
// sequence number (0 if the table has no such room: never joined, or
// forgotten as idle).
func (l *loop) leave(c *conn, m *wire.RoomMsg) uint64 {
	t := &l.s.rooms
	key := l.roomKey(c, m)
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.m[string(key)]
	if r == nil {
		return 0
	}
	i := slices.Index(c.rooms, r)
	if i < 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.seq
	}
	c.rooms = slices.Delete(c.rooms, i, i+1)
	if len(c.rooms) == 0 {
		c.rooms = nil
	}
	return l.removeMember(r, c)
}

// leaveAll takes c out of every room it is in (it is closing).
func (l *loop) leaveAll(c *conn) {
	t := &l.s.rooms
	t.mu.Lock()
	for _, r := range c.rooms {
		l.removeMember(r, c)
	}
	t.mu.Unlock()
	c.rooms = nil
}

// removeMember takes c, a member on l, out of r; the table's mu is held. If
// c was the last member, r stays in the table, keeping its sequence counter,
// and is listed as idle (which may forget the oldest idle room). It returns
// r's next sequence number.
func (l *loop) removeMember(r *room, c *conn) uint64 {
	t := &l.s.rooms
	r.mu.Lock()
	nm := slices.Clone(r.members)
	old := nm[l.id]
	var ms []*conn
	if len(old) > 1 {
		ms = make([]*conn, 0, len(old)-1)
		for _, m := range old {
			if m != c {
				ms = append(ms, m)
			}
		}
	}
	nm[l.id] = ms
	if r.n == 1 {
		nm = nil // the last member
	}
	r.members = nm
	until := r.seq
	r.mu.Unlock()
	r.n--
	t.nMembers.Add(-1)
	if r.n == 0 {
		t.nRooms.Add(-1)
		if old := t.idle.push(&r.idleLink); old != nil {
			delete(t.m, old.key)
		}
	}
	return until
}

// publishRoom fans m, a publish from c, out to the members of its room:
// the D frame is encoded once; members on other loops get it through their
// loop's fan-out queue, members on l directly.
func (l *loop) publishRoom(c *conn, m *wire.RoomMsg) {
	t := &l.s.rooms
	key := l.roomKey(c, m)
	t.mu.RLock()
	r := t.m[string(key)]
	t.mu.RUnlock()
	if r == nil {
		return // no such room: never joined, or forgotten as idle
	}
	f := fanoutPool.Get().(*fanout)
	f.b = appendFrameHeader(f.b[:0], c, 10+len(m.Room)+len(m.Payload))
	seqAt := len(f.b) + 2 + len(m.Room)
	l.dmsg = wire.RoomMsg{Op: wire.RoomDeliver, Room: m.Room, Payload: m.Payload}
	f.b, _ = wire.AppendRoom(f.b, &l.dmsg)
	l.dmsg = wire.RoomMsg{}

	// Sequence number, capture and hand-off under the room's lock, so that
	// every loop receives a room's publishes in sequence order.
	// This loop's own members are queued like the others': delivering
	// them straight after the unlock would put this publish behind later
	// ones other loops handed to l in between.
	r.mu.Lock()
	binary.BigEndian.PutUint64(f.b[seqAt:], r.seq)
	r.seq++
	var refs int32
	for _, ms := range r.members {
		if len(ms) > 0 {
			refs++
		}
	}
	if refs == 0 {
		r.mu.Unlock()
		f.refs.Store(1)
		f.release()
		return
	}
	f.refs.Store(refs)
	var skip *conn
	if m.Flags&wire.PublishToSelf == 0 {
		skip = c
	}
	for i, ms := range r.members {
		if len(ms) > 0 && !l.s.loops[i].handFanout(f, ms, skip) {
			f.release()
		}
	}
	r.mu.Unlock()
	l.takeFanout()
}

// deliver writes frame b, a delivery, to member c of a room, or drops and
// counts it if c's queue cannot take it within MaxPending, or if c is in
// the middle of an echoed frame or fragmented message. Members that have
// closed are skipped (captured member slices may still hold them).
func (l *loop) deliver(c *conn, b []byte) {
	if c.kind != kindWS && c.kind != kindTCP32 {
		return
	}
	queued := c.pending()
	if c == l.cur {
		queued += len(l.obuf)
	}
	if (c.rem > 0 && !c.gather) || c.state.Is(ws.StateFragmented) || queued+len(b) > l.s.cfg.MaxPending {
		l.st[cDrops]++
		return
	}
	l.st[cDeliveries]++
	if c == l.cur {
		l.obuf = append(l.obuf, b...)
		return
	}
	l.send(c, b)
}

// handFanout queues a publish for members ms on l, which writes it after its
// next wake-up. It reports false if l has stopped.
func (l *loop) handFanout(f *fanout, ms []*conn, skip *conn) bool {
	return put(l, &l.fan, fanItem{f, ms, skip})
}

// takeFanout writes the publishes handed to l to their members.
func (l *loop) takeFanout() {
	items := take(l, &l.fan)
	for i, it := range items {
		for _, mc := range it.members {
			if mc != it.skip {
				l.deliver(mc, it.f.b)
			}
		}
		it.f.release()
		items[i] = fanItem{} // let the buffer and member slice go
	}
}
