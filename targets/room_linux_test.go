//go:build linux && !targets_goroutine

package targets

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sockbench/sockbench/internal/wire"
)

// roomBytes encodes m.
func roomBytes(t testing.TB, m wire.RoomMsg) []byte {
	b, err := wire.AppendRoom(nil, &m)
	if err != nil {
		t.Fatalf(
			"encode %+v: %v",
			m, err)
	}
	return b
}

// roomClient speaks the room protocol to s over one transport: "ws" (one
// binary message per request, namespace = request path), "tcp" (len32
// frames) or "udp" (datagrams). Its namespace goes in the ns field of J, L
// and P on every transport.
type roomClient struct {
	transport string
	ns        []byte
	net.Conn
	r io.Reader // reads from the connection (WebSocket: past the handshake)
}

// dialRoom connects a room client to s over transport in namespace ns.
func dialRoom(t *testing.T, s *Server, transport, ns string) *roomClient {
	t.Helper()
	c := &roomClient{transport: transport, ns: []byte(ns)}
	switch transport {
	case "ws":
		wc := dialPath(t, s, ns)
		c.Conn, c.r = wc.Conn, wc.r
	case "tcp":
		c.Conn = dial(t, "tcp", s.TCPAddr())
		c.r = c.Conn
	case "udp":
		c.Conn = dial(t, "udp", s.UDPAddr())
		c.r = c.Conn
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	return c
}

// write sends p as one message of c's transport.
func (c *roomClient) write(p []byte) error {
	var err error
	switch c.transport {
	case "ws":
		err = wsutil.WriteClientMessage(c.Conn, ws.OpBinary, p)
	case "tcp":
		_, err = c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...))
	default:
		_, err = c.Write(p)
	}
	return err
}

// send sends m, in c's namespace, or fails the test.
func (c *roomClient) send(t *testing.T, m wire.RoomMsg) {
	t.Helper()
	m.NS = c.ns
	if err := c.write(roomBytes(t, m)); err != nil {
		t.Fatalf(
			"write %q: %v",
			byte(m.Op), err)
	}
}

// next reads one message's payload.
func (c *roomClient) next() ([]byte, error) {
	switch c.transport {
	case "ws":
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		if h.OpCode != ws.OpBinary || !h.Fin {
			return nil, fmt.Errorf("frame %+v, want one binary frame", h)
		}
		return p, nil
	case "tcp":
		var n [4]byte
		if _, err := io.ReadFull(c.r, n[:]); err != nil {
			return nil, err
		}
		p := make([]byte, binary.BigEndian.Uint32(n[:]))
		_, err := io.ReadFull(c.r, p)
		return p, err
	}
	p := make([]byte, 70000)
	n, err := c.r.Read(p)
	return p[:n], err
}

// read reads one message and parses it as a room message.
func (c *roomClient) read() (wire.RoomMsg, error) {
	var m wire.RoomMsg
	p, err := c.next()
	if err != nil {
		return m, err
	}
	return m, wire.ParseRoom(p, &m)
}

// joinRoom joins room and checks the reply.
func (c *roomClient) joinRoom(t *testing.T, room []byte) {
	t.Helper()
	c.send(t, wire.RoomMsg{Op: wire.RoomJoin, Room: room})
	if m, err := c.read(); err != nil || m.Op != wire.RoomJoined || !bytes.Equal(m.Room, room) {
		t.Fatalf("join reply %q %q, %v", byte(m.Op), m.Room, err)
	}
}

func sameRoomMsg(a, b wire.RoomMsg) bool {
	return a.Op == b.Op && a.Seq == b.Seq && bytes.Equal(a.Room, b.Room) && bytes.Equal(a.Payload, b.Payload)
}

// expectNothingMore checks that c has no message waiting before the reply
// to an echo request.
func expectNothingMore(t *testing.T, c *roomClient, who string) {
	t.Helper()
	want := wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("end")}
	c.send(t, want)
	m, err := c.read()
	if err != nil {
		t.Fatalf("%s: read: %v", who, err)
	}
	if !sameRoomMsg(m, want) {
		t.Fatalf(
			"%s: got %q seq %d %q, want the echo %q",
			who, byte(m.Op), m.Seq, m.Payload, want.Payload)
	}
}

// TestRoomSequence: joined and left replies carry the room sequence numbers
// that bound what a member gets, as publishes happen between them; members
// get exactly the publishes in their range, the publisher its own only with
// PublishToSelf; other namespaces are apart. On every transport, and for
// WebSocket and TCP with the connections spread over loops.
func TestRoomSequence(t *testing.T) {
	t.Parallel()
	r := []byte("r")
	J := wire.RoomMsg{Op: wire.RoomJoin, Room: r}
	L := wire.RoomMsg{Op: wire.RoomLeave, Room: r}
	P := func(flags byte, p string) wire.RoomMsg {
		return wire.RoomMsg{Op: wire.RoomPublish, Flags: flags, Room: r, Payload: []byte(p)}
	}
	j := func(seq uint64) wire.RoomMsg { return wire.RoomMsg{Op: wire.RoomJoined, Room: r, Seq: seq} }
	l := func(seq uint64) wire.RoomMsg { return wire.RoomMsg{Op: wire.RoomLeft, Room: r, Seq: seq} }
	D := func(seq uint64, p string) wire.RoomMsg {
		return wire.RoomMsg{Op: wire.RoomDeliver, Room: r, Seq: seq, Payload: []byte(p)}
	}
	// Connections: 0 publishes and is never a member; 1 and 2 are members
	// in "/"; 3 joins the same room name in "/other".
	const pub, a, b, other = 0, 1, 2, 3
	steps := []struct {
		from int
		send wire.RoomMsg
		want map[int][]wire.RoomMsg
	}{
		{other, J, map[int][]wire.RoomMsg{other: {j(0)}}},
		{a, J, map[int][]wire.RoomMsg{a: {j(0)}}},
		{pub, P(0, "m0"), map[int][]wire.RoomMsg{a: {D(0, "m0")}}},
		{pub, P(wire.PublishToSelf, "m1"), map[int][]wire.RoomMsg{a: {D(1, "m1")}}}, // not a member: self is moot
		{b, J, map[int][]wire.RoomMsg{b: {j(2)}}},
		{a, J, map[int][]wire.RoomMsg{a: {j(2)}}}, // already a member: nothing changes
		{pub, P(0, "m2"), map[int][]wire.RoomMsg{a: {D(2, "m2")}, b: {D(2, "m2")}}},
		{a, L, map[int][]wire.RoomMsg{a: {l(3)}}},
		{pub, P(0, "m3"), map[int][]wire.RoomMsg{b: {D(3, "m3")}}},
		{b, P(wire.PublishToSelf, "m4"), map[int][]wire.RoomMsg{b: {D(4, "m4")}}},
		{b, P(0, "m5"), nil}, // numbered 5, delivered to nobody
		{a, J, map[int][]wire.RoomMsg{a: {j(6)}}},
		{b, P(0, "m6"), map[int][]wire.RoomMsg{a: {D(6, "m6")}}},
		{b, L, map[int][]wire.RoomMsg{b: {l(7)}}},
		{a, L, map[int][]wire.RoomMsg{a: {l(7)}}}, // the last member: the room stays, empty
		{a, L, map[int][]wire.RoomMsg{a: {l(7)}}}, // not a member
		{pub, P(0, "lost"), nil},                  // numbered 7, delivered to nobody
		{a, J, map[int][]wire.RoomMsg{a: {j(8)}}}, // the room goes on: numbers are never reused
		{pub, P(0, "m8"), map[int][]wire.RoomMsg{a: {D(8, "m8")}}},
	}
	for _, tr := range []struct {
		transport string
		loops     int
	}{{"ws", 1}, {"ws", 3}, {"tcp", 1}, {"tcp", 3}, {"udp", 1}} {
		t.Run(fmt.Sprintf("%s/loops=%d", tr.transport, tr.loops), func(t *testing.T) {
			t.Parallel()
			s := serve(t, Config{Loops: tr.loops})
			cs := []*roomClient{dialRoom(t, s, tr.transport, "/"), dialRoom(t, s, tr.transport, "/"),
				dialRoom(t, s, tr.transport, "/"), dialRoom(t, s, tr.transport, "/other")}
			barrier := wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("sync")}
			for i, st := range steps {
				// The echo behind each request comes back once the server
				// has served the request, fan-out included.
				cs[st.from].send(t, st.send)
				cs[st.from].send(t, barrier)
				want := maps.Clone(st.want)
				if want == nil {
					want = make(map[int][]wire.RoomMsg)
				}
				want[st.from] = append(slices.Clip(want[st.from]), barrier)
				for who, msgs := range want {
					for _, want := range msgs {
						got, err := cs[who].read()
						if err != nil {
							t.Fatalf("step %d: conn %d: %v", i, who, err)
						}
						if !sameRoomMsg(got, want) {
							t.Fatalf(
								"step %d: conn %d got %q seq %d %q, want %q seq %d %q",
								i, who, byte(got.Op), got.Seq, got.Payload, byte(want.Op), want.Seq, want.Payload)
						}
					}
				}
			}
			for i, c := range cs {
				expectNothingMore(t, c, fmt.Sprintf("conn %d", i))
			}
			st := s.Stats()
			if st.Rooms != 2 || st.Members != 2 {
				t.Errorf("rooms %d members %d, want 2 and 2", st.Rooms, st.Members)
			}
			if st.Deliveries != 8 || st.Drops != 0 || st.ProtocolErrors != 0 {
				t.Errorf("deliveries %d drops %d protocol errors %d, want 8, 0, 0", st.Deliveries, st.Drops, st.ProtocolErrors)
			}
		})
	}
}

// TestRoomTransportsApart: rooms are per transport: members of one room
// name and namespace over WebSocket, TCP and UDP are in three rooms.
func TestRoomTransportsApart(t *testing.T) {
	t.Parallel()
	s := serve(t, Config{Loops: 2})
	room := []byte("r")
	var cs []*roomClient
	for _, tr := range []string{"ws", "tcp", "udp"} {
		c := dialRoom(t, s, tr, "/")
		c.joinRoom(t, room)
		cs = append(cs, c)
	}
	if st := s.Stats(); st.Rooms != 3 || st.Members != 3 {
		t.Fatalf("rooms %d members %d, want 3 and 3", st.Rooms, st.Members)
	}
	for i, c := range cs {
		c.send(t, wire.RoomMsg{Op: wire.RoomPublish, Room: room, Payload: []byte("x")})
		expectNothingMore(t, c, c.transport)
		for k, o := range cs {
			if k != i {
				expectNothingMore(t, o, o.transport)
			}
		}
	}
}

// TestRoomFanOut: many members over several loops, several publishers at
// once; every member gets every publish exactly once (its own only with
// PublishToSelf), in room sequence order, with the same bytes as every other
// member; non-members get nothing.
func TestRoomFanOut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		transport  string
		loops      int
		members    int
		publishers int // the first members
		self       bool
	}{
		{name: "ws, one loop", transport: "ws", loops: 1, members: 40, publishers: 1},
		{name: "ws, two loops", transport: "ws", loops: 2, members: 41, publishers: 3},
		{name: "ws, four loops, to self", transport: "ws", loops: 4, members: 48, publishers: 4, self: true},
		{name: "tcp, one loop", transport: "tcp", loops: 1, members: 40, publishers: 1},
		{name: "tcp, three loops", transport: "tcp", loops: 3, members: 41, publishers: 3},
		{name: "tcp, four loops, to self", transport: "tcp", loops: 4, members: 48, publishers: 4, self: true},
		// More members than one sendmmsg batch (udpFanBatch).
		{name: "udp", transport: "udp", loops: 1, members: 150, publishers: 3},
		{name: "udp, to self", transport: "udp", loops: 1, members: 70, publishers: 2, self: true},
	}
	const perPublisher = 30
	room := []byte("lobby")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := serve(t, Config{Loops: tt.loops})
			members := make([]*roomClient, tt.members)
			for i := range members {
				members[i] = dialRoom(t, s, tt.transport, "/chat")
				members[i].send(t, wire.RoomMsg{Op: wire.RoomJoin, Room: room})
			}
			for i, c := range members {
				m, err := c.read()
				if err != nil || m.Op != wire.RoomJoined || m.Seq != 0 {
					t.Fatalf("member %d: join reply %q seq %d, %v", i, byte(m.Op), m.Seq, err)
				}
			}
			outsider := dialRoom(t, s, tt.transport, "/chat")
			elsewhere := dialRoom(t, s, tt.transport, "/elsewhere")
			elsewhere.joinRoom(t, room)
			if st := s.Stats(); st.Rooms != 2 || st.Members != int64(tt.members)+1 {
				t.Fatalf("rooms %d members %d, want 2 and %d", st.Rooms, st.Members, tt.members+1)
			}

			var flags byte
			if tt.self {
				flags = wire.PublishToSelf
			}
			var wg sync.WaitGroup
			for p := range tt.publishers {
				wg.Go(func() {
					for i := range perPublisher {
						b := roomBytes(t, wire.RoomMsg{Op: wire.RoomPublish, Flags: flags, NS: []byte("/chat"), Room: room,
							Payload: fmt.Appendf(nil, "from %d #%d", p, i)})
						if err := members[p].write(b); err != nil {
							t.Errorf("publisher %d: %v", p, err)
							return
						}
					}
				})
			}
			wg.Wait()

			total := tt.publishers * perPublisher
			bySeq := make(map[uint64][]byte) // the delivery every member got for each rseq
			for i, c := range members {
				want := total
				if i < tt.publishers && !tt.self {
					want -= perPublisher
				}
				last := int64(-1)
				for k := range want {
					m, err := c.read()
					if err != nil || m.Op != wire.RoomDeliver || !bytes.Equal(m.Room, room) {
						t.Fatalf("member %d delivery %d: %q %q, %v", i, k, byte(m.Op), m.Room, err)
					}
					if int64(m.Seq) <= last || m.Seq >= uint64(total) {
						t.Fatalf("member %d: rseq %d after %d (of %d)", i, m.Seq, last, total)
					}
					last = int64(m.Seq)
					var p, n int
					if _, err := fmt.Sscanf(string(m.Payload), "from %d #%d", &p, &n); err != nil {
						t.Fatalf("member %d: payload %q: %v", i, m.Payload, err)
					}
					if p == i && !tt.self {
						t.Fatalf("member %d got its own publish %q", i, m.Payload)
					}
					if prev, ok := bySeq[m.Seq]; ok && !bytes.Equal(prev, m.Payload) {
						t.Fatalf("rseq %d: member %d got %q, another %q", m.Seq, i, m.Payload, prev)
					}
					bySeq[m.Seq] = m.Payload
				}
				expectNothingMore(t, c, fmt.Sprintf("member %d", i))
			}
			if len(bySeq) != total {
				t.Errorf("%d distinct rseqs delivered, want %d", len(bySeq), total)
			}
			expectNothingMore(t, outsider, "outsider")
			expectNothingMore(t, elsewhere, "elsewhere")
			want := int64(total * tt.members)
			if !tt.self {
				want -= int64(tt.publishers * perPublisher)
			}
			if st := s.Stats(); st.Deliveries != want || st.Drops != 0 {
				t.Errorf("deliveries %d drops %d, want %d and 0", st.Deliveries, st.Drops, want)
			}
		})
	}
}

// TestRoomMemberCloses: a WebSocket or TCP member that closes leaves its
// rooms: later publishes do not count it, and the last one's close removes
// the room.
func TestRoomMemberCloses(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{"ws", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			s := serve(t, Config{Loops: 2})
			room := []byte("r")
			pub, a, b := dialRoom(t, s, tr, "/"), dialRoom(t, s, tr, "/"), dialRoom(t, s, tr, "/")
			a.joinRoom(t, room)
			b.joinRoom(t, room)
			_ = a.Close()
			waitFor(t, "members 1", func() bool { return s.Stats().Members == 1 })
			pub.send(t, wire.RoomMsg{Op: wire.RoomPublish, Room: room, Payload: []byte("x")})
			if m, err := b.read(); err != nil || m.Op != wire.RoomDeliver || m.Seq != 0 {
				t.Fatalf("delivery %q seq %d, %v", byte(m.Op), m.Seq, err)
			}
			if st := s.Stats(); st.Deliveries != 1 || st.Drops != 0 || st.Rooms != 1 {
				t.Errorf("deliveries %d drops %d rooms %d, want 1, 0, 1", st.Deliveries, st.Drops, st.Rooms)
			}
			_ = b.Close()
			waitFor(t, "no rooms", func() bool { st := s.Stats(); return st.Members == 0 && st.Rooms == 0 })
			// Every member has gone: a new one goes on from the room's
			// sequence number, not 0.
			c := dialRoom(t, s, tr, "/")
			c.send(t, wire.RoomMsg{Op: wire.RoomJoin, Room: room})
			if m, err := c.read(); err != nil || m.Op != wire.RoomJoined || m.Seq != 1 {
				t.Fatalf("rejoin: %q seq %d, %v; want joined at 1", byte(m.Op), m.Seq, err)
			}
			if st := s.Stats(); st.Rooms != 1 || st.Members != 1 {
				t.Errorf("rooms %d members %d, want 1 and 1", st.Rooms, st.Members)
			}
		})
	}
}

// TestIdleRooms: a room whose members have all gone stays in its table with
// its sequence counter, not counted in Stats.Rooms, and a join goes on from
// it; past the bound on rooms without members the one empty longest is
// forgotten (and a later join starts it at 0). For the WebSocket and TCP
// table and for the UDP rooms.
func TestIdleRooms(t *testing.T) {
	t.Parallel()
	type table struct {
		s                 *Server
		join, leave       func(name string) uint64 // the j or l reply's sequence number
		setSeq            func(name string, seq uint64)
		rooms, idle, list func() int
	}
	tables := map[string]func(t *testing.T) table{
		"tcp": func(t *testing.T) table {
			tl := newTestLoop(t, Config{}, kindTCPNew)
			l, c, rt := tl.l, tl.c, &tl.l.s.rooms
			rt.m = make(map[string]*room)
			rt.idle.max = 2
			req := func(op wire.RoomOp, name string) *wire.RoomMsg {
				return &wire.RoomMsg{Op: op, Room: []byte(name)}
			}
			return table{
				s: l.s,
				join: func(name string) uint64 {
					from, ok := l.join(c, req(wire.RoomJoin, name))
					if !ok {
						t.Fatalf("join %s refused", name)
					}
					return from
				},
				leave: func(name string) uint64 { return l.leave(c, req(wire.RoomLeave, name)) },
				setSeq: func(name string, seq uint64) {
					rt.m[string(appendRoomKey(nil, []byte(name), 't', ""))].seq = seq
				},
				rooms: func() int { return len(rt.m) },
				idle:  func() int { return rt.idle.n },
				list:  func() int { return idleLen(rt.idle) },
			}
		},
		"udp": func(t *testing.T) table {
			cfg, err := Config{UDP: "unused"}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			u := &udpServer{s: &Server{cfg: cfg}}
			u.initRooms()
			u.r.idle.max = 2
			addr := "member"
			return table{
				s: u.s,
				join: func(name string) uint64 {
					u.r.msg = wire.RoomMsg{Op: wire.RoomJoin, Room: []byte(name)}
					from, ok := u.join([]byte(addr), u.r.members[addr], 0)
					if !ok {
						t.Fatalf("join %s refused", name)
					}
					return from
				},
				leave: func(name string) uint64 {
					u.r.msg = wire.RoomMsg{Op: wire.RoomLeave, Room: []byte(name)}
					return u.leave(u.r.members[addr])
				},
				setSeq: func(name string, seq uint64) {
					u.r.rooms[string(appendRoomKey(nil, []byte(name), 'u', ""))].seq = seq
				},
				rooms: func() int { return len(u.r.rooms) },
				idle:  func() int { return u.r.idle.n },
				list:  func() int { return idleLen(u.r.idle) },
			}
		},
	}
	for name, mk := range tables {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tb := mk(t)
			check := func(step string, rooms, idle int, live, members int64) {
				t.Helper()
				st := tb.s.Stats()
				if tb.rooms() != rooms || tb.idle() != idle || tb.list() != idle || st.Rooms != live || st.Members != members {
					t.Fatalf("%s: table %d rooms, %d idle (listed %d), Stats.Rooms %d, Members %d; want %d, %d, %d, %d",
						step, tb.rooms(), tb.idle(), tb.list(), st.Rooms, st.Members, rooms, idle, live, members)
				}
			}
			want := func(step string, got, want uint64) {
				t.Helper()
				if got != want {
					t.Fatalf("%s: seq %d, want %d", step, got, want)
				}
			}
			want("join a", tb.join("a"), 0)
			tb.setSeq("a", 10)
			want("join b", tb.join("b"), 0)
			tb.setSeq("b", 20)
			check("two rooms", 2, 0, 2, 2)
			want("leave a", tb.leave("a"), 10)
			want("leave b", tb.leave("b"), 20)
			check("both empty", 2, 2, 0, 0)
			want("leave a again", tb.leave("a"), 10)
			want("rejoin a", tb.join("a"), 10) // a is empty no more
			check("a rejoined", 2, 1, 1, 1)
			want("leave a", tb.leave("a"), 10) // now the newest empty room
			want("join c", tb.join("c"), 0)
			tb.setSeq("c", 30)
			want("leave c", tb.leave("c"), 30) // a third empty room: b, empty longest, goes
			check("b forgotten", 2, 2, 0, 0)
			want("leave b", tb.leave("b"), 0) // no such room
			want("rejoin b", tb.join("b"), 0) // a new room
			want("rejoin a", tb.join("a"), 10)
			want("rejoin c", tb.join("c"), 30)
			check("all rejoined", 3, 0, 3, 3)
		})
	}
}

// idleLen counts q's list both ways, checking the links agree.
func idleLen(q idleRooms) int {
	n := 0
	var prev *idleLink
	for x := q.head; x != nil; x = x.next {
		if x.prev != prev {
			return -1
		}
		prev, n = x, n+1
	}
	if prev != q.tail {
		return -1
	}
	return n
}

// TestRoomSlowMember: a member that never reads has its deliveries dropped
// and counted once its queue is full; the queue stays within MaxPending, the
// other member gets everything, and the slow one, when it reads at last, gets
// the deliveries not dropped, in order.
func TestRoomSlowMember(t *testing.T) {
	t.Parallel()
	const (
		maxPending = 256 << 10
		publishes  = 3000 // of 8 KiB: 24 MiB, far more than socket buffers hold
		window     = 4    // publishes ahead of the fast member's reads
	)
	room := []byte("r")
	for _, tr := range []struct {
		transport string
		loops     int
	}{{"ws", 1}, {"ws", 2}, {"tcp", 1}, {"tcp", 2}} {
		t.Run(fmt.Sprintf("%s/loops=%d", tr.transport, tr.loops), func(t *testing.T) {
			t.Parallel()
			s := serve(t, Config{Loops: tr.loops, MaxPending: maxPending})
			slow, fast, pub := dialRoom(t, s, tr.transport, "/"), dialRoom(t, s, tr.transport, "/"), dialRoom(t, s, tr.transport, "/")
			for _, c := range []*roomClient{slow, fast, pub} {
				_ = c.SetDeadline(time.Now().Add(4 * testTimeout))
			}
			slow.joinRoom(t, room)
			fast.joinRoom(t, room)
			var got atomic.Int64
			done := make(chan error, 1)
			go func() {
				for i := range publishes {
					m, err := fast.read()
					if err == nil && (m.Op != wire.RoomDeliver || m.Seq != uint64(i)) {
						err = fmt.Errorf("delivery %d: %q seq %d", i, byte(m.Op), m.Seq)
					}
					if err != nil {
						done <- err
						return
					}
					got.Add(1)
				}
				done <- nil
			}()
			payload := make([]byte, 8<<10)
			msg := roomBytes(t, wire.RoomMsg{Op: wire.RoomPublish, NS: []byte("/"), Room: room, Payload: payload})
			for i := range publishes {
				for got.Load() < int64(i-window) {
					select {
					case err := <-done:
						t.Fatalf("fast member: %v", err)
					default:
						time.Sleep(50 * time.Microsecond)
					}
				}
				if err := pub.write(msg); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("fast member: %v", err)
			}
			// The slow member may be on another loop, which counts its last
			// deliveries after the fast member has read its own.
			waitFor(t, "every delivery counted", func() bool {
				st := s.Stats()
				return st.Deliveries+st.Drops >= 2*publishes
			})
			st := s.Stats()
			if st.Drops == 0 || st.Deliveries+st.Drops != 2*publishes {
				t.Fatalf("deliveries %d drops %d, want some drops and %d in all", st.Deliveries, st.Drops, 2*publishes)
			}
			var peak int64
			for _, l := range s.loops {
				peak = max(peak, l.pub.peakQueued.Load())
			}
			if peak > maxPending {
				t.Errorf("a queue reached %d bytes, want at most MaxPending %d", peak, maxPending)
			}
			t.Logf("peak queue %d bytes of %d; %d of %d deliveries dropped", peak, maxPending, st.Drops, 2*publishes)
			last := int64(-1)
			for range publishes - st.Drops {
				m, err := slow.read()
				if err != nil || m.Op != wire.RoomDeliver || int64(m.Seq) <= last {
					t.Fatalf("slow member: %q seq %d after %d, %v", byte(m.Op), m.Seq, last, err)
				}
				last = int64(m.Seq)
			}
			expectNothingMore(t, slow, "slow member")
		})
	}
}

// TestRoomFrames: how room requests are told from echo messages, gathered
// over reads, and refused.
func TestRoomFrames(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // over several reads
	echo := func(p []byte) []byte { return append([]byte{'E'}, p...) }
	join := roomBytes(t, wire.RoomMsg{Op: wire.RoomJoin, Room: []byte("r")})
	joined := roomBytes(t, wire.RoomMsg{Op: wire.RoomJoined, Room: []byte("r")})
	tests := []struct {
		name      string
		send      [][]byte // client frames, written at once
		want      [][]byte // binary or text payloads echoed or answered, in order
		wantText  bool
		wantClose ws.StatusCode
	}{
		{name: "echo op", send: [][]byte{clientFrame(t, masked(true, ws.OpBinary), echo([]byte("hi")))},
			want: [][]byte{echo([]byte("hi"))}},
		{name: "echo op over many reads", send: [][]byte{clientFrame(t, masked(true, ws.OpBinary), echo(big))},
			want: [][]byte{echo(big)}},
		{name: "measurement message", send: [][]byte{clientFrame(t, masked(true, ws.OpBinary), []byte("S0123"))},
			want: [][]byte{[]byte("S0123")}},
		{name: "text frame starting with J", send: [][]byte{clientFrame(t, masked(true, ws.OpText), []byte("Jr"))},
			want: [][]byte{[]byte("Jr")}, wantText: true},
		{name: "empty binary message", send: [][]byte{clientFrame(t, masked(true, ws.OpBinary), nil)},
			want: [][]byte{{}}},
		{name: "pipelined", send: [][]byte{
			clientFrame(t, masked(true, ws.OpBinary), join),
			clientFrame(t, masked(true, ws.OpBinary), []byte("S1")),
			clientFrame(t, masked(true, ws.OpBinary), echo(nil)),
		}, want: [][]byte{joined, []byte("S1"), echo(nil)}},
		{name: "malformed", send: [][]byte{clientFrame(t, masked(true, ws.OpBinary), []byte("J\x05r"))},
			wantClose: ws.StatusInvalidFramePayloadData},
		{name: "fragmented", send: [][]byte{clientFrame(t, masked(false, ws.OpBinary), []byte("E1"))},
			wantClose: ws.StatusUnsupportedData},
		{name: "too big", send: [][]byte{clientFrame(t, masked(true, ws.OpBinary), echo(make([]byte, 2<<20)))},
			wantClose: ws.StatusMessageTooBig},
	}
	s := serve(t, Config{WS: "127.0.0.1:0", Loops: 2})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialWS(t, s)
			go func() { _, _ = c.Write(bytes.Join(tt.send, nil)) }()
			if tt.wantClose != 0 {
				expectClose(t, c, tt.wantClose)
				return
			}
			for i, want := range tt.want {
				h, p := readFrame(t, c)
				op := ws.OpBinary
				if tt.wantText {
					op = ws.OpText
				}
				if h.OpCode != op || !h.Fin || !bytes.Equal(p, want) {
					t.Fatalf("reply %d: %+v %d bytes, want %v %d bytes", i, h, len(p), op, len(want))
				}
			}
		})
	}
}

// TestRoomDeliveryAllocs checks that a publish to members on two loops
// allocates nothing, server and test client together, over WebSocket, TCP
// and UDP. Not parallel: it counts the process's allocations.
func TestRoomDeliveryAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	const members = 8
	room := []byte("r")
	payload := bytes.Repeat([]byte("a"), 64)
	for _, tr := range []string{"ws", "tcp", "udp"} {
		t.Run(tr, func(t *testing.T) {
			s := serve(t, Config{Loops: 2})
			var rs []io.Reader // boxed once, not per call
			for range members {
				c := dialRoom(t, s, tr, "/")
				c.joinRoom(t, room)
				rs = append(rs, c.r)
			}
			pub := dialRoom(t, s, tr, "/")
			w := io.Writer(pub.Conn)
			p := roomBytes(t, wire.RoomMsg{Op: wire.RoomPublish, NS: pub.ns, Room: room, Payload: payload})
			msg, head := p, 0 // head: the D message's framing
			switch tr {
			case "ws":
				msg, head = ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(p))), 2
			case "tcp":
				msg, head = append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...), 4
			}
			delivery := make([]byte, head+10+len(room)+len(payload))
			var err error
			allocs := testing.AllocsPerRun(200, func() {
				if _, e := w.Write(msg); e != nil && err == nil {
					err = e
				}
				for _, r := range rs {
					if _, e := io.ReadFull(r, delivery); e != nil && err == nil {
						err = e
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if allocs != 0 {
				t.Errorf("%v allocs per publish to %d members, want 0", allocs, members)
			}
			if got := binary.BigEndian.Uint64(delivery[head+2+len(room):]); got != 200 {
				t.Errorf("last rseq %d, want 200", got)
			}
		})
	}
}
