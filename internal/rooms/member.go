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
// reference server after 30 s) keeps it: a third of that.
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
	// UDP, where a join or leave can be lost and a silent member is
	// forgotten: when the last join or leave was sent (ns), whether a
	// repeat is due, and how many answers to repeats are still to come.
	udp      bool
	sentAt   int64
	repeat   bool
	joinsDue int // answers to repeated joins
	leftDue  int // answers to repeated leaves
}

// Member returns the membership state of subscriber connection conn, or
// nil if conn is a publisher.
func (t *Tracker) Member(conn uint32) *Member {
	i := t.roomOf(conn)
	if i < 0 {
		return nil
	}
	return &Member{t: t, conn: conn, room: i, udp: t.udp}
}

// Tick is called every so often (a fraction of the loss timeout) with the
// time now. Over UDP it makes a repeat due: of a join or leave that has
// had no answer within the loss timeout, and of the join of a member every
// keep-alive interval. It reports whether one is due (AppendControl has
// it).
func (m *Member) Tick(now int64) bool {
	if !m.udp || m.repeat {
		return m.repeat
	}
	switch m.state {
	case joining, leaving:
		m.repeat = now-m.sentAt >= m.t.timeout
	case joined:
		m.repeat = now-m.sentAt >= m.t.keepAlive
	}
	return m.repeat
}

// AppendControl appends the next join or leave the member owes the server,
// as a room protocol message (unframed), sent at now, and reports whether
// there was one.
func (m *Member) AppendControl(dst []byte, now int64) ([]byte, bool) {
	var op wire.RoomOp
	switch {
	case m.state == idle:
		op, m.state = wire.RoomJoin, joining
		m.t.Changing(m.room)
	case m.state == joined && m.t.b.ChurnEvery > 0 && m.since >= m.t.b.ChurnEvery:
		op, m.state = wire.RoomLeave, leaving
		m.t.Changing(m.room)
	case m.repeat && (m.state == joined || m.state == joining):
		// A repeated join (keep-alive, or the first went unanswered):
		// it changes no membership; its answer is expected too.
		op, m.joinsDue = wire.RoomJoin, m.joinsDue+1
	case m.repeat && m.state == leaving:
		op, m.leftDue = wire.RoomLeave, m.leftDue+1
	default:
		return dst, false
	}
	m.repeat, m.sentAt = false, now
	msg := wire.RoomMsg{Op: op, NS: m.t.ns, Room: m.t.names[m.room]}
	out, err := wire.AppendRoom(dst, &msg)
	if err != nil { // names are checked when the plan is made
		panic(err)
	}
	return out, true
}

// Due reports whether a join or leave is due (AppendControl has one).
func (m *Member) Due() bool {
	return m.state == idle || m.repeat ||
		(m.state == joined && m.t.b.ChurnEvery > 0 && m.since >= m.t.b.ChurnEvery)
}

// Joined handles a joined reply for room name: the member is owed from on.
// It reports false for a reply the member did not ask for.
func (m *Member) Joined(name []byte, from uint64) bool {
	if m.t.Room(name) != m.room {
		return false
	}
	switch {
	case m.state == joining:
		m.state, m.from, m.next, m.got, m.since = joined, from, from, 0, 0
		m.t.Joined(m.room, m.conn, from)
		return true
	case m.joinsDue > 0:
		m.joinsDue-- // the answer to a repeated join
		return true
	}
	return false
}

// Left handles a left reply: the member was owed nothing from until on.
// Deliveries it took while the leave was unanswered and that the reply
// shows it was not owed become extra. It reports false for a reply the
// member did not ask for.
func (m *Member) Left(name []byte, until uint64) bool {
	if m.t.Room(name) != m.room {
		return false
	}
	if m.state != leaving {
		if m.leftDue > 0 {
			m.leftDue-- // the answer to a repeated leave
			return true
		}
		return false
	}
	for s := max(until, m.next-min(m.next, window)); s < m.next; s++ {
		if m.got&(1<<(m.next-1-s)) != 0 {
			m.t.Overdelivered(m.room, s)
		}
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
	case seq >= m.next+window && !m.t.plausible(i, seq):
		m.t.Extra(i, intended) // a wild number: it must not move the window
		return false
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
	return m.t.Delivered(i, m.conn, seq, publisher, intended, now)
}

// End closes the member's accounting when its connection ends.
func (m *Member) End() {
	switch m.state {
	case joining:
		m.t.NeverJoined(m.room)
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
	i := t.publishRoom(conn, seq)
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
