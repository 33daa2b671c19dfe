//go:build linux && !targets_goroutine

package targets

import (
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockbench/sockbench/internal/poll"
	"github.com/sockbench/sockbench/internal/wire"
)

const (
	// udpFanBatch is the most datagrams (deliveries, replies, echoes) sent
	// per sendmmsg while rooms are in use.
	udpFanBatch = 64
	// maxRoomReply is the longest j or l message, in bytes: op, name, seq.
	maxRoomReply = 1 + 1 + wire.MaxRoomName + 8
	// maxRoomDeliverOverhead is what a D message adds to its payload, in
	// bytes: op, name, seq.
	maxRoomDeliverOverhead = maxRoomReply
)

// What a queued datagram is, for counting it back if it cannot be sent.
const (
	udpOutEcho uint8 = iota
	udpOutReply
	udpOutDeliver
)

// udpRooms are the UDP socket's rooms, keyed by namespace (the ns field)
// and name, and their members, keyed by source address. Only the UDP thread
// touches them: a UDP publish reaches UDP members only, so they need no
// lock. Like the other transports' rooms, a room stays when its last member
// goes, keeping its sequence counter, up to maxIdleRooms (idle).
type udpRooms struct {
	rooms     map[string]*udpRoom
	idle      idleRooms             // rooms without members
	members   map[string]*udpMember // by raw source address
	ttl       int64                 // ns: Config.UDPMemberTTL
	sweepIn   int64                 // ns between expiry sweeps
	nextSweep int64                 // ns since the server's epoch

	key     []byte       // room key scratch
	msg     wire.RoomMsg // the request being served
	dmsg    wire.RoomMsg // the delivery being encoded
	dbuf    []byte       // the D datagram of the last publish, until sent
	replies []byte       // j and l replies until sent; never grows
	out     *poll.Sendto // datagrams to send, in order
	outs    []udpOut     // what each queued datagram is
}

// udpOut is what one queued datagram is and how long.
type udpOut struct {
	what uint8
	size int32
}

// udpRoom is one UDP room: its sequence counter and its members, in the
// order they joined. Without members it is listed in idle.
type udpRoom struct {
	idleLink // key: roomKey
	seq      uint64
	members  []*udpMember
}

// udpMember is a source address in at least one room.
type udpMember struct {
	addr  [unix.SizeofSockaddrAny]byte
	alen  int
	last  int64 // ns since the server's epoch: the last datagram from addr
	rooms []*udpRoom
}

func (m *udpMember) address() []byte { return m.addr[:m.alen] }

// initRooms readies u's rooms.
func (u *udpServer) initRooms() {
	ttl := int64(u.s.cfg.UDPMemberTTL)
	u.r = udpRooms{
		rooms:   make(map[string]*udpRoom),
		members: make(map[string]*udpMember),
		ttl:     ttl,
		sweepIn: min(max(ttl/4, int64(10*time.Millisecond)), int64(time.Second)),
		dbuf:    make([]byte, 0, udpBufferSize+maxRoomDeliverOverhead),
		replies: make([]byte, 0, udpFanBatch*maxRoomReply),
		out:     poll.NewSendto(udpFanBatch),
		outs:    make([]udpOut, 0, udpFanBatch),
	}
}

// plain reports whether the n datagrams of the last batch can be echoed as
// they are: none is a room request and there are no members to refresh.
func (u *udpServer) plain(n int) bool {
	if len(u.r.members) > 0 {
		return false
	}
	for i := range n {
		if p := u.dg.Payload(i); len(p) > 0 && isRoomOp(p[0]) && p[0] != byte(wire.RoomEcho) {
			return false
		}
	}
	return true
}

// serveRooms serves the n datagrams of the last batch, in order, while
// rooms are in use: a datagram from a member refreshes its membership; J,
// L and P are served, a malformed or refused one ignored and counted as a
// protocol error; anything else (E included) is echoed.
func (u *udpServer) serveRooms(n int, now int64) {
	r := &u.r
	for i := range n {
		p, addr := u.dg.Payload(i), u.dg.Addr(i)
		u.st[cBytesIn] += int64(len(p))
		mem := r.members[string(addr)]
		if mem != nil {
			mem.last = now
		}
		if len(p) == 0 || !isRoomOp(p[0]) || p[0] == byte(wire.RoomEcho) {
			u.st[cDatagrams]++
			u.st[cBytesOut] += int64(len(p))
			u.queue(p, addr, udpOutEcho)
			continue
		}
		m := &r.msg
		if wire.ParseRoom(p, m) != nil {
			u.st[cProtocolErrors]++
			continue
		}
		switch m.Op {
		case wire.RoomJoin:
			from, ok := u.join(addr, mem, now)
			if !ok {
				u.st[cProtocolErrors]++
				continue
			}
			u.roomReply(wire.RoomJoined, m.Room, from, addr)
		case wire.RoomLeave:
			u.roomReply(wire.RoomLeft, m.Room, u.leave(mem), addr)
		case wire.RoomPublish:
			u.publishRoom(mem, m)
		}
	}
	r.msg = wire.RoomMsg{}
	u.flush()
}

// roomKey builds the key of the room m names in the scratch buffer.
func (u *udpServer) roomKey(m *wire.RoomMsg) []byte {
	u.r.key = appendRoomKey(u.r.key[:0], m.Room, 'u', m.NS)
	return u.r.key
}

// join makes addr (mem, if it is a member already) a member of the room the
// request names, and returns the room's next sequence number. It reports
// false if addr is in maxRoomsPerConn rooms already.
func (u *udpServer) join(addr []byte, mem *udpMember, now int64) (uint64, bool) {
	r := &u.r
	key := u.roomKey(&r.msg)
	room := r.rooms[string(key)]
	if mem != nil && room != nil && slices.Contains(mem.rooms, room) {
		return room.seq, true
	}
	if mem != nil && len(mem.rooms) >= maxRoomsPerConn {
		return 0, false
	}
	if mem == nil {
		mem = &udpMember{last: now}
		mem.alen = copy(mem.addr[:], addr)
		r.members[string(mem.address())] = mem
	}
	switch {
	case room == nil:
		room = &udpRoom{idleLink: idleLink{key: string(key)}}
		r.rooms[room.key] = room
		u.s.rooms.nRooms.Add(1)
	case len(room.members) == 0: // empty: it goes on from its sequence number
		r.idle.remove(&room.idleLink)
		u.s.rooms.nRooms.Add(1)
	}
	room.members = append(room.members, mem)
	mem.rooms = append(mem.rooms, room)
	u.s.rooms.nMembers.Add(1)
	return room.seq, true
}

// leave takes mem (nil: not a member of any room) out of the room the
// request names and returns the room's next sequence number (0 if there is
// no such room: never joined, or forgotten as idle).
func (u *udpServer) leave(mem *udpMember) uint64 {
	room := u.r.rooms[string(u.roomKey(&u.r.msg))]
	if room == nil {
		return 0
	}
	if mem != nil && slices.Contains(mem.rooms, room) {
		u.removeMember(room, mem)
	}
	return room.seq
}

// removeMember takes mem out of room, lists the room as idle if mem was its
// last member (which may forget the oldest idle room), and forgets mem if
// it has no rooms left.
func (u *udpServer) removeMember(room *udpRoom, mem *udpMember) {
	r := &u.r
	room.members = slices.DeleteFunc(room.members, func(m *udpMember) bool { return m == mem })
	mem.rooms = slices.DeleteFunc(mem.rooms, func(x *udpRoom) bool { return x == room })
	u.s.rooms.nMembers.Add(-1)
	if len(room.members) == 0 {
		room.members = nil
		u.s.rooms.nRooms.Add(-1)
		if old := r.idle.push(&room.idleLink); old != nil {
			delete(r.rooms, old.key)
		}
	}
	if len(mem.rooms) == 0 {
		delete(r.members, string(mem.address()))
	}
}

// expire takes every member that has sent nothing for the TTL out of its
// rooms, at most once per sweep interval.
func (u *udpServer) expire(now int64) {
	r := &u.r
	if now < r.nextSweep || len(r.members) == 0 {
		return
	}
	r.nextSweep = now + r.sweepIn
	for _, mem := range r.members {
		if now-mem.last < r.ttl {
			continue
		}
		for len(mem.rooms) > 0 { // the last removal forgets mem
			u.removeMember(mem.rooms[len(mem.rooms)-1], mem)
		}
	}
}

// dropRooms forgets every room and member (the server is closing).
func (u *udpServer) dropRooms() {
	n, nr := 0, 0
	for _, room := range u.r.rooms {
		n += len(room.members)
		if len(room.members) > 0 {
			nr++
		}
	}
	u.s.rooms.nMembers.Add(int64(-n))
	u.s.rooms.nRooms.Add(int64(-nr))
	clear(u.r.rooms)
	clear(u.r.members)
	u.r.idle = idleRooms{max: u.r.idle.max}
}

// roomReply queues a joined or left reply to addr.
func (u *udpServer) roomReply(op wire.RoomOp, name []byte, seq uint64, addr []byte) {
	r := &u.r
	if cap(r.replies)-len(r.replies) < maxRoomReply {
		u.flush()
	}
	n := len(r.replies)
	r.replies, _ = wire.AppendRoom(r.replies, &wire.RoomMsg{Op: op, Room: name, Seq: seq})
	u.queue(r.replies[n:], addr, udpOutReply)
}

// publishRoom encodes m, a publish from mem (nil if not a member), as one D
// datagram and queues it for every member of its room but the publisher
// (unless it asked for its own publish).
func (u *udpServer) publishRoom(mem *udpMember, m *wire.RoomMsg) {
	r := &u.r
	room := r.rooms[string(u.roomKey(m))]
	if room == nil {
		return // no such room: never joined, or forgotten as idle
	}
	if len(r.dbuf) > 0 {
		u.flush() // the last publish's datagram is still queued
	}
	r.dmsg = wire.RoomMsg{Op: wire.RoomDeliver, Room: m.Room, Seq: room.seq, Payload: m.Payload}
	r.dbuf, _ = wire.AppendRoom(r.dbuf[:0], &r.dmsg)
	r.dmsg = wire.RoomMsg{}
	d := r.dbuf // a full batch sent on the way empties r.dbuf, not d
	room.seq++
	skip := mem
	if m.Flags&wire.PublishToSelf != 0 {
		skip = nil
	}
	for _, mb := range room.members {
		if mb != skip {
			u.st[cDeliveries]++
			u.queue(d, mb.address(), udpOutDeliver)
		}
	}
	r.dbuf = d
}

// queue adds datagram b for addr to the batch, sending the batch if it is
// full. b and addr must stay unchanged until the batch is sent.
func (u *udpServer) queue(b, addr []byte, what uint8) {
	r := &u.r
	r.outs = append(r.outs, udpOut{what, int32(len(b))})
	if r.out.Add(b, addr) {
		u.flush()
	}
}

// flush sends the queued datagrams, in order. While the socket's buffer is
// full it waits for room (until Close), as echo does. A datagram that
// cannot be sent is counted back: an echo is not echoed, a delivery is a
// drop.
func (u *udpServer) flush() {
	r := &u.r
	u.publish() // counted before they are sent
	n := r.out.Len()
	for lo := 0; lo < n; {
		m, err := r.out.SendWait(u.fd, lo)
		lo += m
		if err == nil {
			break
		}
		if u.s.stopping.Load() {
			for ; lo < n; lo++ {
				u.unsent(r.outs[lo])
			}
			break
		}
		if poll.Again(err) {
			continue
		}
		u.unsent(r.outs[lo])
		u.st[cIOErrors]++
		u.logf("targets: udp write: %v", err)
		lo++
	}
	r.out.Reset()
	r.outs = r.outs[:0]
	r.replies = r.replies[:0]
	r.dbuf = r.dbuf[:0]
	u.publish()
}

// unsent counts back a queued datagram that was not sent.
func (u *udpServer) unsent(o udpOut) {
	switch o.what {
	case udpOutEcho:
		u.st[cDatagrams]--
		u.st[cBytesOut] -= int64(o.size)
	case udpOutDeliver:
		u.st[cDeliveries]--
		u.st[cDrops]++
	}
}
