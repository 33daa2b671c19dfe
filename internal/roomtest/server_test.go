package roomtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sockbench/sockbench/internal/wire"
)

// testTimeout bounds every client connection of a test.
const testTimeout = 20 * time.Second

var transports = []string{"ws", "tcp"}

// eachTransport runs test as a parallel subtest per transport, each with
// its own server with faults f.
func eachTransport(t *testing.T, f Faults, test func(t *testing.T, s *Server)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			test(t, Start(t, Config{Transport: tr, Faults: f}))
		})
	}
}

// joinAll joins each of cs to room, one at a time.
func joinAll(t *testing.T, room string, cs ...*client) {
	t.Helper()
	for i, c := range cs {
		if _, err := c.join(room); err != nil {
			t.Fatalf("client %d: join %s: %v", i, room, err)
		}
	}
}

// client is a raw test client of either transport.
type client struct {
	ws bool
	nc net.Conn
	br *bufio.Reader
	ns string // the namespace: the WebSocket path, or the ns field over TCP
}

// dial opens a client of s in namespace ns ("/" is the default one).
func dial(t *testing.T, s *Server, ns string) *client {
	t.Helper()
	c := &client{ws: s.ws, ns: ns}
	if s.ws {
		nc, br, _, err := ws.Dial(context.Background(), "ws://"+s.Addr()+ns)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if br == nil {
			br = bufio.NewReader(nc)
		}
		c.nc, c.br = nc, br
	} else {
		nc, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.nc, c.br = nc, bufio.NewReader(nc)
	}
	_ = c.nc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { _ = c.nc.Close() })
	return c
}

// sendRaw sends one message (a WebSocket frame of opcode op, or a len32
// frame).
func (c *client) sendRaw(op ws.OpCode, b []byte) error {
	if c.ws {
		return wsutil.WriteClientMessage(c.nc, op, b)
	}
	_, err := c.nc.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

// send sends a room message, with the client's namespace in ns for J, L, P.
func (c *client) send(m wire.RoomMsg) error {
	if m.Op == wire.RoomJoin || m.Op == wire.RoomLeave || m.Op == wire.RoomPublish {
		m.NS = []byte(c.ns)
	}
	b, err := wire.AppendRoom(nil, &m)
	if err != nil {
		return err
	}
	return c.sendRaw(ws.OpBinary, b)
}

// readRaw reads one message and its opcode (binary over TCP).
func (c *client) readRaw() (ws.OpCode, []byte, error) {
	if c.ws {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return 0, nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return 0, nil, err
		}
		if !h.Fin || h.Masked {
			return 0, nil, fmt.Errorf("frame %+v from the server", h)
		}
		return h.OpCode, p, nil
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(c.br, p)
	return ws.OpBinary, p, err
}

// read reads one room message.
func (c *client) read() (wire.RoomMsg, error) {
	var m wire.RoomMsg
	op, p, err := c.readRaw()
	if err != nil {
		return m, err
	}
	if op != ws.OpBinary {
		return m, fmt.Errorf("opcode %v, want binary", op)
	}
	return m, wire.ParseRoom(p, &m)
}

// until reads room messages up to the first of op for room, which it
// returns with the D messages before it. Any other message is an error.
func (c *client) until(op wire.RoomOp, room string) (wire.RoomMsg, []wire.RoomMsg, error) {
	var ds []wire.RoomMsg
	for {
		m, err := c.read()
		if err != nil {
			return m, ds, err
		}
		switch {
		case m.Op == op && string(m.Room) == room:
			return m, ds, nil
		case m.Op == wire.RoomDeliver:
			ds = append(ds, m)
		default:
			return m, ds, fmt.Errorf("got %q %q seq %d, want D or %q %q", byte(m.Op), m.Room, m.Seq, byte(op), room)
		}
	}
}

// join joins room and returns from.
func (c *client) join(room string) (uint64, error) {
	if err := c.send(wire.RoomMsg{Op: wire.RoomJoin, Room: []byte(room)}); err != nil {
		return 0, err
	}
	m, ds, err := c.until(wire.RoomJoined, room)
	if err == nil && len(ds) > 0 {
		err = fmt.Errorf("%d deliveries before j", len(ds))
	}
	return m.Seq, err
}

// collect returns the deliveries of room received so far, up to a marker:
// a J for a member (a member already, it changes nothing) or an L for a
// non-member, whose reply queues behind every delivery of the room queued
// before it. It returns the reply's sequence number.
func (c *client) collect(room string, member bool) ([]wire.RoomMsg, uint64, error) {
	op, reply := wire.RoomLeave, wire.RoomLeft
	if member {
		op, reply = wire.RoomJoin, wire.RoomJoined
	}
	if err := c.send(wire.RoomMsg{Op: op, Room: []byte(room)}); err != nil {
		return nil, 0, err
	}
	m, ds, err := c.until(reply, room)
	return ds, m.Seq, err
}

// echoSync sends an echo and waits for it: every request sent before it has
// been served (its replies and deliveries queued). Deliveries received
// meanwhile are returned.
func (c *client) echoSync() ([]wire.RoomMsg, error) {
	if err := c.send(wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("sync")}); err != nil {
		return nil, err
	}
	var ds []wire.RoomMsg
	for {
		m, err := c.read()
		if err != nil {
			return ds, err
		}
		switch {
		case m.Op == wire.RoomEcho && string(m.Payload) == "sync":
			return ds, nil
		case m.Op == wire.RoomDeliver:
			ds = append(ds, m)
		default:
			return ds, fmt.Errorf("got %q while waiting for the echo", byte(m.Op))
		}
	}
}

// publish publishes payloads m<first>..m<first+n-1> to room and waits until
// the server has fanned them out. It returns the deliveries the publisher
// received meanwhile.
func (c *client) publish(room string, flags byte, first, n int) ([]wire.RoomMsg, error) {
	for i := first; i < first+n; i++ {
		if err := c.send(wire.RoomMsg{Op: wire.RoomPublish, Flags: flags, Room: []byte(room), Payload: payload(i)}); err != nil {
			return nil, err
		}
	}
	return c.echoSync()
}

func payload(i int) []byte { return fmt.Appendf(nil, "m%d", i) }

// seqs checks that every D in ds is of room with the payload its rseq
// implies (publishes numbered from 0 by one publisher) and returns the
// rseqs in order of arrival.
func seqs(ds []wire.RoomMsg, room string) ([]uint64, error) {
	out := make([]uint64, 0, len(ds))
	for _, d := range ds {
		if string(d.Room) != room || !bytes.Equal(d.Payload, payload(int(d.Seq))) {
			return out, fmt.Errorf("D room %q seq %d payload %q, want room %q payload %q", d.Room, d.Seq, d.Payload, room, payload(int(d.Seq)))
		}
		out = append(out, d.Seq)
	}
	return out, nil
}

// span is the rseqs [from, until), in order.
func span(from, until uint64) []uint64 {
	var s []uint64
	for i := from; i < until; i++ {
		s = append(s, i)
	}
	return s
}

// mustSeqs collects c's deliveries of room up to a marker and returns their
// rseqs.
func mustSeqs(t *testing.T, c *client, room string, member bool) []uint64 {
	t.Helper()
	ds, _, err := c.collect(room, member)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	s, err := seqs(ds, room)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFaults: three members join room r one at a time (member numbers 0, 1,
// 2), a bystander connects, and a publisher that is no member publishes 200
// messages. Each member gets exactly the copies of each rseq the faults
// say, in rseq order; the bystander gets the extras; the counters agree.
func TestFaults(t *testing.T) {
	t.Parallel()
	const members, n = 3, 200
	cases := []struct {
		name   string
		faults Faults
		copies func(member int, rseq uint64) int // copies member gets of rseq
		extra  bool                              // the bystander gets one copy of each
	}{
		{"none", Faults{}, func(int, uint64) int { return 1 }, false},
		{"drop every 100 to member 1", Faults{DropEvery: 100, DropMember: 1},
			func(m int, r uint64) int { return b2i(!(m == 1 && r%100 == 99)) }, false},
		{"drop every 100 to member 0 (the zero value)", Faults{DropEvery: 100},
			func(m int, r uint64) int { return b2i(!(m == 0 && r%100 == 99)) }, false},
		{"drop every 7 to every member", Faults{DropEvery: 7, DropMember: -1},
			func(_ int, r uint64) int { return b2i(r%7 != 6) }, false},
		{"duplicate every 50", Faults{DuplicateEvery: 50},
			func(_ int, r uint64) int { return 1 + b2i(r%50 == 49) }, false},
		{"drop wins over duplicate", Faults{DropEvery: 100, DropMember: 2, DuplicateEvery: 50},
			func(m int, r uint64) int {
				if m == 2 && r%100 == 99 {
					return 0
				}
				return 1 + b2i(r%50 == 49)
			}, false},
		{"extra", Faults{Extra: true}, func(int, uint64) int { return 1 }, true},
		{"delay another room", Faults{DelayRoom: "other", Delay: time.Hour}, func(int, uint64) int { return 1 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachTransport(t, tc.faults, func(t *testing.T, s *Server) {
				var ms []*client
				for i := range members {
					c := dial(t, s, "/")
					from, err := c.join("r")
					if err != nil {
						t.Fatalf("member %d: join: %v", i, err)
					}
					if from != 0 {
						t.Fatalf("member %d: from %d, want 0", i, from)
					}
					ms = append(ms, c)
				}
				by := dial(t, s, "/")
				if _, err := by.echoSync(); err != nil {
					t.Fatal(err)
				}
				pub := dial(t, s, "/")
				if _, err := pub.publish("r", 0, 0, n); err != nil {
					t.Fatalf("publish: %v", err)
				}

				var want Stats
				want.Publishes, want.Joins = n, members
				for i, c := range ms {
					var exp []uint64
					for r := range uint64(n) {
						k := tc.copies(i, r)
						for range k {
							exp = append(exp, r)
						}
						want.Deliveries += int64(k)
						want.Dropped += int64(b2i(k == 0))
						want.Duplicated += int64(max(k-1, 0))
					}
					if got := mustSeqs(t, c, "r", true); !slices.Equal(got, exp) {
						t.Errorf("member %d: got %d deliveries %v,\nwant %d %v", i, len(got), got, len(exp), exp)
					}
				}
				var exp []uint64
				if tc.extra {
					exp = span(0, n)
					want.Extras = n
					want.Deliveries += n
				}
				if got := mustSeqs(t, by, "r", false); !slices.Equal(got, exp) {
					t.Errorf("bystander: got %d deliveries, want %d", len(got), len(exp))
				}
				if got := mustSeqs(t, pub, "r", false); len(got) != 0 {
					t.Errorf("publisher: got %d deliveries, want none", len(got))
				}
				if got := s.Stats(); got != want {
					t.Errorf("stats %+v,\nwant  %+v", got, want)
				}
			})
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMembershipMidStream: while a publisher publishes, one member leaves
// and another joins, and the publisher goes on for 100 more. The leaver gets
// exactly [0, until) and nothing after its l; the joiner exactly [from, n)
// after its j; a member throughout gets everything.
func TestMembershipMidStream(t *testing.T) {
	t.Parallel()
	const after, maxPublishes = 100, 100_000
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		stay, leaver, joiner, pub := dial(t, s, "/"), dial(t, s, "/"), dial(t, s, "/"), dial(t, s, "/")
		joinAll(t, "r", stay, leaver)
		errs := make(chan error, 3)
		var wg sync.WaitGroup
		changed := make(chan struct{}) // the leave and the join are done
		var n uint64                   // publishes, once pubDone is closed
		pubDone := make(chan struct{})
		go func() {
			// Publish in chunks of 10 until the membership changes,
			// then 100 more.
			defer close(pubDone)
			stop := maxPublishes
			for int(n) < stop {
				if _, err := pub.publish("r", 0, int(n), 10); err != nil {
					errs <- err
					return
				}
				n += 10
				select {
				case <-changed:
					stop = min(stop, int(n)+after)
				default:
				}
			}
		}()

		var until, from uint64
		var leaverGot []uint64
		seen50 := make(chan struct{})
		wg.Go(func() {
			// Leave after the 100th delivery.
			release := sync.OnceFunc(func() { close(seen50) })
			defer release() // if it fails before
			var ds []wire.RoomMsg
			for len(ds) < 100 {
				if len(ds) == 50 {
					release()
				}
				m, err := leaver.read()
				if err != nil || m.Op != wire.RoomDeliver {
					errs <- fmt.Errorf("leaver: %q %v", byte(m.Op), err)
					return
				}
				ds = append(ds, m)
			}
			if err := leaver.send(wire.RoomMsg{Op: wire.RoomLeave, Room: []byte("r")}); err != nil {
				errs <- err
				return
			}
			l, more, err := leaver.until(wire.RoomLeft, "r")
			if err != nil {
				errs <- fmt.Errorf("leaver: %v", err)
				return
			}
			until = l.Seq
			if leaverGot, err = seqs(append(ds, more...), "r"); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			// Join once the leaver has seen rseq 49.
			<-seen50
			f, err := joiner.join("r")
			if err != nil {
				errs <- fmt.Errorf("joiner: %v", err)
				return
			}
			from = f
		})
		wg.Wait()
		close(changed)
		<-pubDone
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("leaver until %d, joiner from %d, of %d", until, from, n)
		if until < 100 || until > n-after || from < 50 || from > n-after {
			t.Errorf("until %d, from %d: want both mid-stream, in [100 or 50, %d]", until, from, n-after)
		}
		if got, want := leaverGot, span(0, until); !slices.Equal(got, want) {
			t.Errorf("leaver: until %d, got %v", until, got)
		}
		if got := mustSeqs(t, leaver, "r", false); len(got) != 0 {
			t.Errorf("leaver: %d deliveries after l", len(got))
		}
		if got, want := mustSeqs(t, joiner, "r", true), span(from, n); !slices.Equal(got, want) {
			t.Errorf("joiner: from %d, got %v", from, got)
		}
		if got, want := mustSeqs(t, stay, "r", true), span(0, n); !slices.Equal(got, want) {
			t.Errorf("member throughout: got %d deliveries, want %d", len(got), len(want))
		}
		st := s.Stats()
		if st.Joins != 3 || st.Leaves != 1 || st.Publishes != int64(n) || st.Deliveries != int64(n+until+n-from) {
			t.Errorf("stats %+v; until %d from %d", st, until, from)
		}
	})
}

// TestLeaveReplies: j and l carry the room's next rseq; leaving a room one
// is not in, or one never joined, changes nothing; a room keeps its
// sequence after its last member leaves.
func TestLeaveReplies(t *testing.T) {
	t.Parallel()
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		a, pub := dial(t, s, "/"), dial(t, s, "/")
		leave := func(room string) uint64 {
			t.Helper()
			if err := a.send(wire.RoomMsg{Op: wire.RoomLeave, Room: []byte(room)}); err != nil {
				t.Fatal(err)
			}
			m, ds, err := a.until(wire.RoomLeft, room)
			if err != nil || len(ds) != 0 {
				t.Fatalf("leave %s: %v, %d deliveries", room, err, len(ds))
			}
			return m.Seq
		}
		if got := leave("nowhere"); got != 0 {
			t.Errorf("l of a room never joined: %d, want 0", got)
		}
		if _, err := a.join("r"); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.publish("r", 0, 0, 5); err != nil {
			t.Fatal(err)
		}
		if got := mustSeqs(t, a, "r", true); !slices.Equal(got, span(0, 5)) {
			t.Errorf("got %v", got)
		}
		if got := leave("r"); got != 5 {
			t.Errorf("until %d, want 5", got)
		}
		if got := leave("r"); got != 5 {
			t.Errorf("second leave: until %d, want 5", got)
		}
		if _, err := pub.publish("r", 0, 5, 3); err != nil { // numbered 5..7, to nobody
			t.Fatal(err)
		}
		if from, err := a.join("r"); err != nil || from != 8 {
			t.Errorf("rejoin: from %d (%v), want 8: the room keeps its sequence", from, err)
		}
		if st := s.Stats(); st.Joins != 2 || st.Leaves != 1 || st.Publishes != 8 || st.Deliveries != 5 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestPublishToSelf: the publisher gets its own publish only if it is a
// member and sets the flag.
func TestPublishToSelf(t *testing.T) {
	t.Parallel()
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		pub, m, outsider := dial(t, s, "/"), dial(t, s, "/"), dial(t, s, "/")
		joinAll(t, "r", pub, m)
		steps := []struct {
			from  *client
			flags byte
		}{
			{pub, 0},                       // 0: m only
			{pub, wire.PublishToSelf},      // 1: m and pub
			{outsider, wire.PublishToSelf}, // 2: both members; the flag is moot
			{m, 0},                         // 3: pub only
		}
		early := map[*client][]wire.RoomMsg{} // received while publishing
		for i, st := range steps {
			ds, err := st.from.publish("r", st.flags, i, 1)
			if err != nil {
				t.Fatal(err)
			}
			early[st.from] = append(early[st.from], ds...)
		}
		for _, c := range []struct {
			name   string
			c      *client
			member bool
			want   []uint64
		}{
			{"publisher", pub, true, []uint64{1, 2, 3}},
			{"member", m, true, []uint64{0, 1, 2}},
			{"outsider", outsider, false, nil},
		} {
			got, err := seqs(early[c.c], "r")
			if err != nil {
				t.Fatal(err)
			}
			if got = append(got, mustSeqs(t, c.c, "r", c.member)...); !slices.Equal(got, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			}
		}
	})
}

// TestDelayRoom: deliveries of the delayed room arrive at least Delay after
// their publish, in order, with the l behind them; another room's arrive
// without delay.
func TestDelayRoom(t *testing.T) {
	t.Parallel()
	const n, delay = 20, 300 * time.Millisecond
	eachTransport(t, Faults{DelayRoom: "slow", Delay: delay}, func(t *testing.T, s *Server) {
		m, pub := dial(t, s, "/"), dial(t, s, "/")
		for _, r := range []string{"slow", "fast"} {
			if _, err := m.join(r); err != nil {
				t.Fatal(err)
			}
		}
		sent := map[string][]time.Time{}
		for i := range n {
			for _, r := range []string{"slow", "fast"} {
				sent[r] = append(sent[r], time.Now())
				if err := pub.send(wire.RoomMsg{Op: wire.RoomPublish, Room: []byte(r), Payload: payload(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		got := map[string][]uint64{}
		var worstFast, bestSlow time.Duration = 0, time.Hour
		for range 2 * n {
			d, err := m.read()
			if err != nil || d.Op != wire.RoomDeliver {
				t.Fatalf("read: %q %v", byte(d.Op), err)
			}
			lat := time.Since(sent[string(d.Room)][d.Seq])
			if string(d.Room) == "slow" {
				bestSlow = min(bestSlow, lat)
			} else {
				worstFast = max(worstFast, lat)
			}
			got[string(d.Room)] = append(got[string(d.Room)], d.Seq)
		}
		for _, r := range []string{"slow", "fast"} {
			if !slices.Equal(got[r], span(0, n)) {
				t.Errorf("%s: got %v, want 0..%d in order", r, got[r], n-1)
			}
		}
		if bestSlow < delay {
			t.Errorf("slow room: a delivery after %v, want >= %v", bestSlow, delay)
		}
		if worstFast >= delay {
			t.Errorf("fast room: a delivery after %v, want < %v", worstFast, delay)
		}

		// The l of the delayed room queues behind its held deliveries.
		if _, err := pub.publish("slow", 0, n, 3); err != nil {
			t.Fatal(err)
		}
		if err := m.send(wire.RoomMsg{Op: wire.RoomLeave, Room: []byte("slow")}); err != nil {
			t.Fatal(err)
		}
		l, ds, err := m.until(wire.RoomLeft, "slow")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := seqs(ds, "slow"); l.Seq != n+3 || !slices.Equal(got, span(n, n+3)) {
			t.Errorf("l until %d after %v, want until %d after %v", l.Seq, got, n+3, span(n, n+3))
		}
	})
}

// TestEcho: E and every message that is not a room request come back
// unchanged (WebSocket text as text); an empty message too.
func TestEcho(t *testing.T) {
	t.Parallel()
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		c := dial(t, s, "/")
		hdr := make([]byte, wire.HeaderSize+8)
		wire.Pad(hdr)
		(&wire.Header{ConnID: 3, Seq: 9}).Put(hdr)
		msgs := []struct {
			op ws.OpCode
			b  []byte
		}{
			{ws.OpBinary, []byte("Ehello")},
			{ws.OpBinary, hdr},
			{ws.OpBinary, []byte{}},
			{ws.OpBinary, []byte("xyz")},
		}
		if s.ws {
			msgs = append(msgs, struct {
				op ws.OpCode
				b  []byte
			}{ws.OpText, []byte("J not a request in text")})
		}
		for _, m := range msgs {
			if err := c.sendRaw(m.op, m.b); err != nil {
				t.Fatal(err)
			}
			op, b, err := c.readRaw()
			if err != nil {
				t.Fatal(err)
			}
			if op != m.op || !bytes.Equal(b, m.b) {
				t.Errorf("sent %v %q, got %v %q", m.op, m.b, op, b)
			}
		}
	})
}

// TestNamespaces: a room name in two namespaces is two rooms (WebSocket: the
// path; TCP: the ns field).
func TestNamespaces(t *testing.T) {
	t.Parallel()
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		root, other, pub := dial(t, s, "/"), dial(t, s, "/other"), dial(t, s, "/other")
		joinAll(t, "r", root, other)
		if _, err := pub.publish("r", 0, 0, 2); err != nil {
			t.Fatal(err)
		}
		if got := mustSeqs(t, root, "r", true); len(got) != 0 {
			t.Errorf("namespace /: got %v, want nothing", got)
		}
		if got := mustSeqs(t, other, "r", true); !slices.Equal(got, span(0, 2)) {
			t.Errorf("namespace /other: got %v, want [0 1]", got)
		}
	})
}

// TestMalformed: a malformed room request ends the connection (WebSocket
// with close 1007).
func TestMalformed(t *testing.T) {
	t.Parallel()
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		c := dial(t, s, "/")
		if err := c.sendRaw(ws.OpBinary, []byte{'J', 9, 'x'}); err != nil {
			t.Fatal(err)
		}
		op, b, err := c.readRaw()
		if s.ws {
			if err != nil || op != ws.OpClose || len(b) < 2 || ws.StatusCode(binary.BigEndian.Uint16(b)) != ws.StatusInvalidFramePayloadData {
				t.Fatalf("got %v %q %v, want close 1007", op, b, err)
			}
			_, _, err = c.readRaw()
		}
		if err == nil || !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("got %v, want the connection closed", err)
		}
	})
}

// TestLoad: 199 members in one room and 20 publishes (3,980 deliveries)
// over 200 connections.
func TestLoad(t *testing.T) {
	t.Parallel()
	const members, n = 199, 20
	eachTransport(t, Faults{}, func(t *testing.T, s *Server) {
		ms := make([]*client, members)
		for i := range ms {
			ms[i] = dial(t, s, "/")
			if _, err := ms[i].join("r"); err != nil {
				t.Fatal(err)
			}
		}
		pub := dial(t, s, "/")
		if _, err := pub.publish("r", 0, 0, n); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, members)
		for i, c := range ms {
			go func() {
				ds, _, err := c.collect("r", true)
				if err == nil {
					var got []uint64
					if got, err = seqs(ds, "r"); err == nil && !slices.Equal(got, span(0, n)) {
						err = fmt.Errorf("member %d: got %v", i, got)
					}
				}
				errs <- err
			}()
		}
		for range members {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got, want := s.Stats().Deliveries, int64(members*n); got != want {
			t.Errorf("deliveries %d, want %d", got, want)
		}
	})
}
