// Package roomtest is a room broadcast server for tests. It speaks the
// reference room protocol (docs/broadcast-design.md, internal/wire/room.go)
// over WebSocket or TCP len32 frames and can misbehave on purpose (Faults),
// so that tests of the client-side delivery accounting can check that it
// counts missing, duplicated and extra deliveries and per-room latency right.
//
// It is deliberately simple, not fast: a reader and a writer goroutine per
// connection, a mutex per room, unbounded output queues. The production
// reference server lives in targets/ and has no fault hooks.
//
// Differences from the reference server: rooms are never deleted (a room
// is created by its first join and keeps its sequence counter for the
// server's life, so room sequence numbers are never reused), and there is
// no limit on the rooms a connection may join.
package roomtest

import (
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/wire"
)

// MaxMessage is the largest message the server accepts, in bytes; a larger
// one closes the connection (WebSocket: close 1009).
const MaxMessage = 1 << 20

// Config configures a Server.
type Config struct {
	// Transport is "ws" (the default when empty): WebSocket binary frames;
	// a connection's namespace is its upgrade request's path (query
	// stripped) and the ns field of J, L and P is ignored. Or "tcp": len32
	// frames (4-byte big-endian length, then the message); the namespace is
	// the ns field.
	Transport string
	Faults    Faults
	// RecordHolds keeps, for every delivery written, when the server read
	// its publish and began to write it (see Hold and Server.Holds).
	RecordHolds bool
}

// Hold is one delivery as the server measured it: when it had read the
// publish and when it began to write the delivery, so how long it really
// held it, its own scheduling delay included. The client cannot receive
// the delivery before its write began, so the latency a client measures
// from the publish's intended send time is at least Write minus that time.
type Hold struct {
	Room string // the room's name
	// Intended is the intended send time in the measurement header at the
	// start of the publish's payload (wire.Header: ns on the publisher's
	// run clock); -1 if the payload has none.
	Intended int64
	// Read is when the server had read the publish, Write when it began the
	// write of a batch holding this delivery.
	Read, Write time.Time
}

// Faults are the ways the server misbehaves on purpose. The zero value is a
// correct server. Faults apply to D deliveries only: j, l and echo replies
// are never dropped or duplicated. "Member number" is defined at
// DropMember, "connection number" at Extra.
//
// For publish number rseq of a room with members M (the connections in the
// room when the publish took its number, less the publisher unless it set
// wire.PublishToSelf), each member m in M gets:
//
//	0 copies  if DropEvery > 0 && rseq%DropEvery == DropEvery-1 && (DropMember < 0 || m's member number == DropMember)
//	2 copies  else if DuplicateEvery > 0 && rseq%DuplicateEvery == DuplicateEvery-1
//	1 copy    else
//
// and, with Extra, one more copy goes to one non-member (see Extra). A
// delivery that is dropped is not duplicated; extras are never dropped or
// duplicated.
type Faults struct {
	// DropEvery > 0 drops the deliveries of every room's publishes whose
	// room sequence number rseq has rseq%DropEvery == DropEvery-1 (so with
	// 100: rseq 99, 199, ...), to the member selected by DropMember only.
	// Each one not written is counted in Stats.Dropped.
	DropEvery int
	// DropMember selects whose deliveries DropEvery drops: the connection
	// whose member number is DropMember, or every member if DropMember is
	// negative (-1); the zero value selects member 0, not every member. A
	// connection's member number is given at its first successful J on the
	// server, in the order those joins were served: 0, 1, 2, ... over the
	// whole server (all rooms and namespaces), and it keeps it for its life
	// (through leaves and later joins). To make the numbers certain, join
	// one connection at a time, waiting for its j.
	DropMember int
	// DuplicateEvery > 0 writes the delivery of every room's publishes
	// whose rseq has rseq%DuplicateEvery == DuplicateEvery-1 twice, back to
	// back, to every member that gets it (a delivery dropped by DropEvery
	// is not written at all). Each second copy is counted in
	// Stats.Duplicated.
	DuplicateEvery int
	// DelayRoom and Delay (both set, Delay > 0) hold back every delivery
	// of the rooms named DelayRoom (in any namespace), member and extra
	// alike, by at least Delay from the moment the publish took its number
	// before it is written. The j and l replies of those rooms queue behind
	// the held deliveries (they are not delayed themselves), so a
	// connection still sees everything about such a room in order: j, the
	// deliveries in rseq order, l. Other rooms' deliveries and echoes are
	// not held.
	DelayRoom string
	Delay     time.Duration
	// Extra also writes each publish's delivery to one connection that is
	// not a member of the room: the open connection with the lowest
	// connection number that is neither a member nor the publisher (none,
	// and nothing is counted, if there is no such connection). Connection
	// numbers are 0, 1, 2, ... in the order connections were opened: TCP
	// at accept, WebSocket when its upgrade completed. Each is counted in
	// Stats.Extras.
	Extra bool
}

// Stats are the server's counters since Start. Publishes, Dropped,
// Duplicated and Extras are counted when a publish is fanned out;
// Deliveries when a D frame is handed to the socket. Once every queued
// frame has been written (and no connection closed with frames queued):
//
//	Deliveries == sum over publishes of (members that get it) + Duplicated + Extras
//
// where "members that get it" excludes the Dropped ones.
type Stats struct {
	Publishes  int64 // P messages that took a room sequence number (a P to a room never joined takes none and is not counted)
	Deliveries int64 // D frames written, duplicate copies and extras included
	Dropped    int64 // member deliveries not written because of DropEvery
	Duplicated int64 // second copies written because of DuplicateEvery
	Extras     int64 // deliveries to a non-member because of Extra
	Joins      int64 // J that made a connection a member (a J for a room it is in already is not counted)
	Leaves     int64 // L that ended a membership (memberships ended by a connection closing are not counted)
}

// counters are Stats, updated concurrently.
type counters struct {
	publishes, deliveries, dropped, duplicated, extras, joins, leaves atomic.Int64
}

// Server is a room broadcast server speaking the reference room protocol
// over WebSocket (gobwas/ws, binary frames, namespace = URL path) or TCP
// len32 frames (namespace = the ns field), one reader and one writer
// goroutine per connection, for tests.
//
// Protocol, as the reference server: J is answered with j{room, from = the
// room's next rseq}; L with l{room, until = the room's next rseq} (0 if the
// room was never joined); P takes the room's next rseq under the room's
// lock and delivers D{room, rseq, payload} to every member (the publisher
// only if it is a member and set wire.PublishToSelf); E is echoed back
// unchanged, and so is every message whose first byte is not J, L, P or E
// (WebSocket text frames too, as text). A member gets exactly the publishes
// numbered from its j's from up to its l's until, each room's in rseq
// order, and the j before them and the l after them. A malformed J, L or P
// closes the connection (WebSocket: close 1007).
type Server struct {
	ws      bool
	faults  Faults
	record  bool // Config.RecordHolds
	ln      net.Listener
	st      counters
	joiners atomic.Int64 // member numbers given so far
	wg      sync.WaitGroup

	mu     sync.Mutex
	rooms  map[roomKey]*room
	all    map[*conn]struct{} // every accepted connection, to close them on Close
	open   []*conn            // open connections, in connection number order
	closed bool

	holdMu sync.Mutex
	holds  []Hold
}

// roomKey names a room: namespace and room name.
type roomKey struct{ ns, name string }

// room is one room: its sequence counter and members, under mu.
type room struct {
	name    string
	delayed bool // its deliveries are held back by Faults.Delay

	mu      sync.Mutex
	seq     uint64 // the next publish's room sequence number
	members map[*conn]struct{}
}

// Start starts a server listening on 127.0.0.1:0; it stops in t.Cleanup.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{faults: cfg.Faults, record: cfg.RecordHolds, rooms: map[roomKey]*room{}, all: map[*conn]struct{}{}}
	switch cfg.Transport {
	case "", "ws":
		s.ws = true
	case "tcp":
	default:
		t.Fatalf("roomtest: transport %q, want ws or tcp", cfg.Transport)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("roomtest: %v", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

// URL is the address to dial: ws://127.0.0.1:port/ (the namespace "/";
// append another path for another namespace) or tcp://127.0.0.1:port.
func (s *Server) URL() string {
	if s.ws {
		return "ws://" + s.ln.Addr().String() + "/"
	}
	return "tcp://" + s.ln.Addr().String()
}

// Addr is the listening address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{
		Publishes:  s.st.publishes.Load(),
		Deliveries: s.st.deliveries.Load(),
		Dropped:    s.st.dropped.Load(),
		Duplicated: s.st.duplicated.Load(),
		Extras:     s.st.extras.Load(),
		Joins:      s.st.joins.Load(),
		Leaves:     s.st.leaves.Load(),
	}
}

// Holds returns every delivery written so far with when the server read its
// publish and began to write it, in the order they were written; nil
// unless Config.RecordHolds.
func (s *Server) Holds() []Hold {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	return slices.Clone(s.holds)
}

// Close stops the listener, closes every connection (queued frames are not
// written) and waits for the server's goroutines. Start arranges for it to
// run in t.Cleanup; calling it earlier is allowed, and again is a no-op.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.all {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	s.wg.Wait()
}

// accept serves connections until the listener is closed.
func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.all[c] = struct{}{}
		s.wg.Add(2)
		if !s.ws {
			s.opened(c)
		}
		s.mu.Unlock()
		go c.writeLoop()
		go c.serve()
	}
}

// opened makes c an open connection, the last in connection number order,
// and so a candidate for Extra deliveries; s.mu is held.
func (s *Server) opened(c *conn) {
	s.open = append(s.open, c)
}

// gone takes c, whose reader has stopped, out of its rooms and the
// server, and tells its writer to stop.
func (s *Server) gone(c *conn) {
	for r := range c.rooms {
		r.mu.Lock()
		delete(r.members, c)
		r.mu.Unlock()
	}
	c.rooms = nil
	s.mu.Lock()
	delete(s.all, c)
	if i := slices.Index(s.open, c); i >= 0 {
		s.open = slices.Delete(s.open, i, i+1)
	}
	s.mu.Unlock()
	c.stop()
}

// room returns the room name in namespace ns, creating it if create is set;
// nil if it does not exist.
func (s *Server) room(ns, name string, create bool) *room {
	k := roomKey{ns, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[k]
	if r == nil && create {
		f := s.faults
		r = &room{
			name:    name,
			delayed: f.DelayRoom != "" && f.Delay > 0 && name == f.DelayRoom,
			members: map[*conn]struct{}{},
		}
		s.rooms[k] = r
	}
	return r
}

// request serves one room request p (first byte J, L, P or E) from c, read
// at time at.
func (s *Server) request(c *conn, p []byte, at time.Time) error {
	var m wire.RoomMsg
	if err := wire.ParseRoom(p, &m); err != nil {
		return err
	}
	ns := string(m.NS)
	if s.ws {
		ns = c.ns
	}
	switch m.Op {
	case wire.RoomJoin:
		s.join(c, s.room(ns, string(m.Room), true))
	case wire.RoomLeave:
		s.leave(c, ns, string(m.Room))
	case wire.RoomPublish:
		s.publish(c, &m, s.room(ns, string(m.Room), false), at)
	case wire.RoomEcho:
		c.send(nil, frame{b: p})
	}
	return nil
}

// join makes c a member of r and replies j{from}, both under r's lock, so
// that c gets exactly the publishes numbered from on, after the j.
func (s *Server) join(c *conn, r *room) {
	_, already := c.rooms[r]
	if !already && c.member.Load() < 0 {
		c.member.Store(s.joiners.Add(1) - 1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !already {
		r.members[c] = struct{}{}
		c.rooms[r] = struct{}{}
		s.st.joins.Add(1)
	}
	c.send(r, frame{b: reply(wire.RoomJoined, r.name, r.seq)})
}

// leave takes c out of room name in ns and replies l{until}, both under the
// room's lock, so that c gets no publish numbered until or later.
func (s *Server) leave(c *conn, ns, name string) {
	r := s.room(ns, name, false)
	if r == nil {
		c.send(nil, frame{b: reply(wire.RoomLeft, name, 0)})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := c.rooms[r]; ok {
		delete(r.members, c)
		delete(c.rooms, r)
		s.st.leaves.Add(1)
	}
	c.send(r, frame{b: reply(wire.RoomLeft, r.name, r.seq)})
}

// reply encodes a j or l message.
func reply(op wire.RoomOp, name string, seq uint64) []byte {
	b, _ := wire.AppendRoom(nil, &wire.RoomMsg{Op: op, Room: []byte(name), Seq: seq})
	return b
}

// publish fans m, a publish from pub read at time at, out to r's members,
// with the faults applied. The D message is encoded once; the number is
// taken and the deliveries are queued under r's lock, so every
// connection's queue holds a room's deliveries in rseq order.
func (s *Server) publish(pub *conn, m *wire.RoomMsg, r *room, at time.Time) {
	if r == nil {
		return // never joined: no members, no number
	}
	d, err := wire.AppendRoom(nil, &wire.RoomMsg{Op: wire.RoomDeliver, Room: m.Room, Payload: m.Payload})
	if err != nil {
		return // cannot happen: the name was parsed, so it fits
	}
	seqAt := 2 + len(m.Room) // op, name length, name
	f := s.faults
	r.mu.Lock()
	defer r.mu.Unlock()
	rseq := r.seq
	r.seq++
	s.st.publishes.Add(1)
	binary.BigEndian.PutUint64(d[seqAt:], rseq)
	dropSeq := every(f.DropEvery, rseq)
	dup := every(f.DuplicateEvery, rseq)
	deliver := frame{b: d, deliver: true}
	if s.record {
		deliver.hold = &Hold{Room: r.name, Intended: -1, Read: at}
		var mh wire.Header
		if mh.Decode(m.Payload) == nil {
			deliver.hold.Intended = mh.Intended
		}
	}
	for c := range r.members {
		if c == pub && m.Flags&wire.PublishToSelf == 0 {
			continue
		}
		if dropSeq && (f.DropMember < 0 || c.member.Load() == int64(f.DropMember)) {
			s.st.dropped.Add(1)
			continue
		}
		c.send(r, deliver)
		if dup {
			c.send(r, deliver)
			s.st.duplicated.Add(1)
		}
	}
	if f.Extra {
		if x := s.bystander(r, pub); x != nil {
			x.send(r, deliver)
			s.st.extras.Add(1)
		}
	}
}

// recordHold keeps a delivery whose publish is held by h (Write not set)
// and whose write began at start.
func (s *Server) recordHold(h Hold, start time.Time) {
	h.Write = start
	s.holdMu.Lock()
	s.holds = append(s.holds, h)
	s.holdMu.Unlock()
}

// every reports whether rseq is the last of a run of n (n > 0).
func every(n int, rseq uint64) bool {
	return n > 0 && rseq%uint64(n) == uint64(n-1)
}

// bystander returns the open connection with the lowest connection number
// that is neither a member of r nor pub, or nil; r's lock is held.
func (s *Server) bystander(r *room, pub *conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		if _, member := r.members[c]; !member && c != pub {
			return c
		}
	}
	return nil
}
