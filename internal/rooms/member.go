package rooms

import (
	"time"

	"github.com/sockbench/sockbench/internal/wire"
)

// Member states.
const (
	idle    = iota // not in the room; a join is due
	joining        // join sent, joined not yet received
	joined         // member from `from` on
	leaving        // leave sent, left not yet received
	done           // the connection ended
)

// window is how far back, in sequence numbers, a member tells a repeated
// delivery from a reordered one.
const window = 64

// KeepAliveEvery is how often a UDP member repeats its join unless the plan
// says otherwise, so that a server that forgets silent UDP members (the
// reference server after 30 s) keeps it: a third of that. The repeat rides
// on a delivery, so a room with no publish for longer than the server's
// expiry still loses its members.
const KeepAliveEvery = 10 * time.Second

// Member is one subscriber connection's side of the accounting: its
// membership of its room and which deliveries it has had. It is owned by
// its connection (not safe for concurrent use).
type Member struct {
	t     *Tracker
	conn  uint32
	room  int
	state int
	from  uint64 // first sequence number owed (joined, leaving)
	// next is one past the highest sequence number received; bit k of got
	// says whether next-1-k was received.
	next  uint64
	got   uint64
	since int // deliveries since the join (for churn)
	// UDP: when the join was last sent or repeated (ns), whether a repeat is
	// due, and how many repeats await their answer.
	udp       bool
	lastJoin  int64
	keepDue   bool
	keepAlive int
}

// Member returns the membership state of subscriber connection conn, or
// nil if conn is a publisher.
func (t *Tracker) Member(conn uint32) *Member {
	i := t.b.RoomOf(conn)
	if i < 0 {
		return nil
	}
	return &Member{t: t, conn: conn, room: i, udp: t.udp, lastJoin: -1}
}

// AppendControl appends the next join or leave the member owes the server,
// as a room protocol message (unframed), and reports whether there was one.
func (m *Member) AppendControl(dst []byte) ([]byte, bool) {
	var op wire.RoomOp
	switch {
	case m.state == idle:
		op, m.state = wire.RoomJoin, joining
	case m.state == joined && m.t.b.ChurnEvery > 0 && m.since >= m.t.b.ChurnEvery:
		op, m.state = wire.RoomLeave, leaving
	case m.state == joined && m.keepDue:
		// A repeated join: it changes no membership.
		m.keepDue = false
		m.keepAlive++
		msg := wire.RoomMsg{Op: wire.RoomJoin, NS: m.t.ns, Room: m.t.names[m.room]}
		out, _ := wire.AppendRoom(dst, &msg)
		return out, true
	default:
		return dst, false
	}
	m.t.Changing(m.room)
	msg := wire.RoomMsg{Op: op, NS: m.t.ns, Room: m.t.names[m.room]}
	out, err := wire.AppendRoom(dst, &msg)
	if err != nil { // names are checked when the plan is made
		panic(err)
	}
	return out, true
}

// Due reports whether a join or leave is due (AppendControl has one).
func (m *Member) Due() bool {
	return m.state == idle || (m.state == joined && (m.keepDue || m.t.b.ChurnEvery > 0 && m.since >= m.t.b.ChurnEvery))
}

// Joined handles a joined reply for room name: the member is owed from on.
// It reports false for a reply the member did not ask for.
func (m *Member) Joined(name []byte, from uint64) bool {
	if m.state == joined && m.keepAlive > 0 && m.t.Room(name) == m.room {
		m.keepAlive-- // the answer to a repeated join
		return true
	}
	if m.state != joining || m.t.Room(name) != m.room {
		return false
	}
	m.state, m.from, m.next, m.got, m.since = joined, from, from, 0, 0
	m.t.Joined(m.room, m.conn, from)
	return true
}

// Left handles a left reply: the member was owed nothing from until on.
// It reports false for a reply the member did not ask for.
func (m *Member) Left(name []byte, until uint64) bool {
	if m.state != leaving || m.t.Room(name) != m.room {
		return false
	}
	m.state = idle // and join again (churn)
	m.t.Left(m.room, m.conn, m.from, until)
	return true
}

// Deliver accounts a delivery of room name's publish seq, by publisher,
// intended at intended ns, received at now. It reports whether it is a
// delivery the member was owed and got for the first time in time to
// count: a latency sample. Anything else is counted as duplicated, extra
// or late.
func (m *Member) Deliver(name []byte, seq uint64, publisher uint32, intended, now int64) bool {
	i := m.t.Room(name)
	if i != m.room || (m.state != joined && m.state != leaving) || seq < m.from {
		m.t.Extra(i, intended)
		return false
	}
	switch {
	case seq >= m.next:
		shift := seq + 1 - m.next
		if shift >= window {
			m.got = 1
		} else {
			m.got = m.got<<shift | 1
		}
		m.next = seq + 1
	case m.next-1-seq < window:
		bit := uint64(1) << (m.next - 1 - seq)
		if m.got&bit != 0 {
			m.t.Duplicate(i, intended)
			return false
		}
		m.got |= bit
	default:
		m.t.Duplicate(i, intended) // too far back to tell: taken as a repeat
		return false
	}
	m.since++
	if m.udp {
		if m.lastJoin < 0 {
			m.lastJoin = now
		} else if now-m.lastJoin >= m.t.keepAlive {
			m.lastJoin, m.keepDue = now, true
		}
	}
	return m.t.Delivered(i, seq, publisher, intended, now)
}

// End closes the member's accounting when its connection ends.
func (m *Member) End() {
	switch m.state {
	case joining:
		m.t.Ended(m.room, m.conn, 0, true)
	case joined:
		m.t.Ended(m.room, m.conn, m.from, false)
	case leaving:
		m.t.Ended(m.room, m.conn, m.from, true)
	}
	m.state = done
}

// AppendPublish appends publish number seq of connection conn, carrying
// payload, as a room protocol message (unframed), and returns the room
// index it goes to.
func (t *Tracker) AppendPublish(dst []byte, conn uint32, seq uint64, payload []byte) ([]byte, int) {
	i := t.b.PublishRoom(conn, seq)
	var flags byte
	if t.b.ToSelf {
		flags = wire.PublishToSelf
	}
	msg := wire.RoomMsg{Op: wire.RoomPublish, Flags: flags, NS: t.ns, Room: t.names[i], Payload: payload}
	out, err := wire.AppendRoom(dst, &msg)
	if err != nil {
		panic(err)
	}
	return out, i
}
