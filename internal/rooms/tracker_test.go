package rooms

import (
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
)

// A step is one event a test feeds the tracker: conn joins, leaves, ends,
// or receives room 0's publish seq (from the publisher, intended at 0).
type step struct {
	op   byte // 'j' join answered, 'l' leave answered, 'e' connection ended, 'd' delivery
	conn uint32
	seq  uint64
}

func newTracker(members int, chat, toSelf bool) (*Tracker, []*Member) {
	p := &plan.Plan{
		Timeout: time.Second,
		Phases:  []plan.Phase{{Conns: members + 1, PerConnRate: 10, Senders: 1}},
		Broadcast: &plan.Broadcast{Namespace: "/", Rooms: []plan.Room{{Name: "r", Members: members}},
			Publishers: 1, Chat: chat, ToSelf: toSelf, TopRooms: 1, ChurnEvery: 1},
	}
	win := metrics.NewWindow()
	win.SetStart(0)
	t := New(p, win)
	var ms []*Member
	for i := range members {
		ms = append(ms, t.Member(uint32(i)))
	}
	return t, ms
}

// feed plays steps: a join or leave is first sent (AppendControl), then
// answered.
func feed(t *testing.T, tr *Tracker, ms []*Member, publisher uint32, steps []step) {
	t.Helper()
	room := []byte("r")
	for _, s := range steps {
		m := ms[s.conn]
		switch s.op {
		case 'j', 'l':
			if _, ok := m.AppendControl(nil, 0); !ok {
				t.Fatalf("conn %d: no join or leave due", s.conn)
			}
			ok := false
			if s.op == 'j' {
				ok = m.Joined(room, s.seq)
			} else {
				ok = m.Left(room, s.seq)
			}
			if !ok {
				t.Fatalf("conn %d: %c %d refused", s.conn, s.op, s.seq)
			}
		case 'e':
			m.End()
		case 'd':
			m.Deliver(room, s.seq, publisher, 0, int64(s.seq)+1000)
		}
	}
}

func TestTrackerAccounting(t *testing.T) {
	join := func(c uint32, from uint64) step { return step{'j', c, from} }
	leave := func(c uint32, until uint64) step { return step{'l', c, until} }
	del := func(c uint32, seq uint64) step { return step{'d', c, seq} }
	var all []step // two members from 0, both get 0..4
	for s := range uint64(5) {
		all = append(all, del(0, s), del(1, s))
	}
	cases := []struct {
		name      string
		members   int
		chat      bool
		publisher uint32 // conn id of the publisher (2: a dedicated one)
		steps     []step
		want      counts
	}{
		{"all delivered", 2, false, 2, append([]step{join(0, 0), join(1, 0)}, all...),
			counts{fannedOut: 5, expected: 10, delivered: 10, complete: 5}},
		{"one missing", 2, false, 2, []step{join(0, 0), join(1, 0), del(0, 0), del(1, 0), del(0, 1), del(0, 2), del(1, 2)},
			counts{fannedOut: 3, expected: 6, delivered: 5, missing: 1, complete: 2}},
		{"duplicate", 2, false, 2, []step{join(0, 0), join(1, 0), del(0, 0), del(1, 0), del(1, 0)},
			counts{fannedOut: 1, expected: 2, delivered: 2, duplicated: 1, complete: 1}},
		{"before the join is extra", 2, false, 2, []step{join(0, 0), join(1, 3), del(0, 3), del(1, 2), del(1, 3)},
			counts{fannedOut: 1, expected: 2, delivered: 2, extra: 1, complete: 1}},
		{"out of order across members", 2, false, 2, []step{join(0, 0), join(1, 0), del(1, 1), del(0, 0), del(0, 1), del(1, 0)},
			counts{fannedOut: 2, expected: 4, delivered: 4, complete: 2}},
		{"reordered on one member", 1, false, 1, []step{join(0, 0), del(0, 1), del(0, 0), del(0, 2)},
			counts{fannedOut: 3, expected: 3, delivered: 3, complete: 3}},
		{"a number nobody got", 2, false, 2, []step{join(0, 0), join(1, 0), del(0, 0), del(1, 0), del(0, 2), del(1, 2)},
			counts{fannedOut: 3, expected: 6, delivered: 4, missing: 2, complete: 2}},
		{"leave and rejoin", 2, false, 2, []step{join(0, 0), join(1, 0), del(0, 0), del(1, 0), leave(1, 1), del(0, 1), del(0, 2), join(1, 3), del(0, 3), del(1, 3)},
			counts{fannedOut: 4, expected: 6, delivered: 6, complete: 4}},
		{"after leaving is extra", 1, false, 1, []step{join(0, 0), del(0, 0), leave(0, 1), del(0, 1)},
			counts{fannedOut: 1, expected: 1, delivered: 1, extra: 1, complete: 1}},
		{"chat: the publisher is not owed its own", 3, true, 0, []step{join(0, 0), join(1, 0), join(2, 0), del(1, 0), del(2, 0)},
			counts{fannedOut: 1, expected: 2, delivered: 2, complete: 1}},
		{"chat: its own publish is extra", 3, true, 0, []step{join(0, 0), join(1, 0), join(2, 0), del(0, 0), del(1, 0), del(2, 0)},
			counts{fannedOut: 1, expected: 2, delivered: 2, extra: 1, complete: 1}},
		{"chat: a number nobody got is not owed to its publisher", 3, true, 0, []step{join(0, 0), join(1, 0), join(2, 0), del(1, 0), del(2, 0), del(1, 2), del(2, 2)},
			counts{fannedOut: 3, expected: 6, delivered: 4, missing: 2, complete: 2}},
		{"joins answered out of order", 2, false, 2, []step{join(1, 1), join(0, 0), del(0, 0), del(0, 1), del(1, 1)},
			counts{fannedOut: 2, expected: 3, delivered: 3, complete: 2}},
		{"a wild number is extra and moves nothing", 1, false, 1, []step{join(0, 0), del(0, 1<<40), del(0, 0), del(0, 1)},
			counts{fannedOut: 2, expected: 2, delivered: 2, extra: 1, complete: 2}},
		{"ended: owed what the room numbered", 2, false, 2, []step{join(0, 0), join(1, 0), del(0, 0), del(0, 1), {'e', 1, 0}, del(0, 2)},
			counts{fannedOut: 3, expected: 5, delivered: 3, missing: 2, complete: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, ms := newTracker(tc.members, tc.chat, false)
			feed(t, tr, ms, tc.publisher, tc.steps)
			b, err := tr.Finish()
			if err != nil {
				t.Fatal(err)
			}
			got := counts{fannedOut: b.FannedOut, expected: b.Expected, delivered: b.Delivered, missing: b.Missing,
				duplicated: b.Duplicated, extra: b.Extra, late: b.Late, complete: b.Complete}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if b.FanOut.Count != b.Complete {
				t.Errorf("fan-out samples %d, complete %d", b.FanOut.Count, b.Complete)
			}
		})
	}
}

// A publish settles as soon as every owed delivery is in, not before a
// join or leave in flight is answered, and after the loss timeout without
// its stragglers, which then count late.
func TestTrackerSweep(t *testing.T) {
	tr, ms := newTracker(2, false, false)
	feed(t, tr, ms, 2, []step{{'j', 0, 0}, {'j', 1, 0}, {'d', 0, 0}, {'d', 1, 0}, {'d', 0, 1}})
	tr.Published(0, 0)
	tr.Published(0, 0)
	tr.Sweep(2000)
	if got := tr.Pending(); got != 1 {
		t.Fatalf("pending %d after sweep, want 1 (publish 1 awaits member 1)", got)
	}
	tr.Sweep(int64(time.Second) + 2000)
	if got := tr.Pending(); got != 0 {
		t.Fatalf("pending %d after the timeout, want 0", got)
	}
	ms[1].Deliver([]byte("r"), 1, 2, 0, int64(time.Second)+3000)
	b, _ := tr.Finish()
	if b.Late != 1 || b.Missing != 1 || b.Delivered != 3 {
		t.Errorf("late %d missing %d delivered %d, want 1 1 3", b.Late, b.Missing, b.Delivered)
	}

	tr, ms = newTracker(2, false, false)
	feed(t, tr, ms, 2, []step{{'j', 0, 0}, {'d', 0, 0}})
	ms[1].AppendControl(nil, 0) // member 1's join is in flight
	tr.Sweep(2000)
	if tr.rooms[0].base != 0 {
		t.Fatalf("settled while a join was unanswered")
	}
}

// The ring of publishes awaited never loses one: a publish that finds its
// slot taken settles the older ones first.
func TestTrackerRingOverflow(t *testing.T) {
	tr, ms := newTracker(1, false, false)
	feed(t, tr, ms, 1, []step{{'j', 0, 0}})
	n := uint64(3 * len(tr.rooms[0].recs))
	for s := range n {
		ms[0].Deliver([]byte("r"), s, 1, 0, 1000)
	}
	b, _ := tr.Finish()
	if b.Expected != int64(n) || b.Delivered != int64(n) || b.Late != 0 {
		t.Errorf("expected %d delivered %d late %d, want %d %d 0", b.Expected, b.Delivered, b.Late, n, n)
	}
}

func TestRoomSizes(t *testing.T) {
	if got := ringSize(10, time.Second); got != 64 {
		t.Errorf("ringSize(10/s, 1s) = %d, want 64", got)
	}
	if got := ringSize(1000, time.Second); got < 4000 || got&(got-1) != 0 {
		t.Errorf("ringSize(1000/s, 1s) = %d, want a power of two >= 4000", got)
	}
}

// Over UDP a member repeats its join every keep-alive interval, and a join
// that had no answer within the loss timeout; the repeats and their
// answers change no membership.
func TestMemberRepeats(t *testing.T) {
	tr, ms := newTracker(1, false, false)
	tr.udp, tr.b.ChurnEvery = true, 0
	m := ms[0]
	m.udp = true
	room := []byte("r")
	sec := int64(time.Second)
	if _, ok := m.AppendControl(nil, 0); !ok {
		t.Fatal("no join")
	}
	if m.Tick(sec / 2) {
		t.Fatal("a repeat due before the loss timeout")
	}
	if !m.Tick(sec) || !m.Due() {
		t.Fatal("an unanswered join not repeated after the loss timeout")
	}
	b, ok := m.AppendControl(nil, sec)
	if !ok || b[0] != 'J' || tr.rooms[0].changing != 1 {
		t.Fatalf("repeat %q ok %v, room changing %d: want a J that is not a second change", b, ok, tr.rooms[0].changing)
	}
	if !m.Joined(room, 0) || !m.Joined(room, 1) || m.Joined(room, 2) {
		t.Fatal("want the join and the repeat answered once each, then no more")
	}
	if len(tr.rooms[0].spans) != 1 || m.from != 0 || tr.rooms[0].changing != 0 {
		t.Fatalf("spans %v, from %d, changing %d: want one membership from 0", tr.rooms[0].spans, m.from, tr.rooms[0].changing)
	}
	m.Deliver(room, 0, 1, sec, sec+1000)
	if m.Tick(sec + int64(KeepAliveEvery) - 1) {
		t.Fatal("a keep-alive due early")
	}
	if !m.Tick(sec + int64(KeepAliveEvery)) {
		t.Fatal("no keep-alive after KeepAliveEvery")
	}
	if b, ok := m.AppendControl(nil, sec+int64(KeepAliveEvery)); !ok || b[0] != 'J' {
		t.Fatalf("keep-alive %q, %v", b, ok)
	}
	if !m.Joined(room, 5) || m.from != 0 {
		t.Fatalf("the keep-alive's answer moved the membership to %d", m.from)
	}
	m.Deliver(room, 1, 1, sec, sec+2000)
	res, _ := tr.Finish()
	if res.Delivered != 2 || res.Missing != 0 || res.Extra != 0 {
		t.Errorf("delivered %d missing %d extra %d, want 2 0 0", res.Delivered, res.Missing, res.Extra)
	}
}

// Publishes no member received and whose number no member saw count as
// missed by every member the room had at its last numbered publish.
func TestTrackerUnseen(t *testing.T) {
	tr, ms := newTracker(2, false, false)
	feed(t, tr, ms, 2, []step{{'j', 0, 0}, {'j', 1, 0}, {'d', 0, 0}, {'d', 1, 0}})
	for range 3 {
		tr.Published(0, 0)
	}
	tr.Sweep(int64(3 * time.Second))
	ms[0].End()
	ms[1].End()
	tr.Sweep(int64(4 * time.Second)) // members ended at the last number: still counted
	b, _ := tr.Finish()
	if b.FannedOut != 1 || b.Unseen != 2 || b.Expected != 6 || b.Missing != 4 || b.Delivered != 2 {
		t.Errorf("fanned out %d unseen %d expected %d missing %d delivered %d, want 1 2 6 4 2",
			b.FannedOut, b.Unseen, b.Expected, b.Missing, b.Delivered)
	}
}

// A delivery a member took while its leave was unanswered, at or after the
// until the answer gives, was not owed: it becomes extra.
func TestMemberLeaveTakesBack(t *testing.T) {
	tr, ms := newTracker(2, false, false)
	feed(t, tr, ms, 2, []step{{'j', 0, 0}, {'j', 1, 0}, {'d', 0, 0}, {'d', 1, 0}})
	room := []byte("r")
	m := ms[0]
	if b, ok := m.AppendControl(nil, 0); !ok || b[0] != 'L' {
		t.Fatalf("no leave due after a delivery (churn every 1): %q", b)
	}
	m.Deliver(room, 1, 2, 0, 1000)
	m.Deliver(room, 2, 2, 0, 1000)
	ms[1].Deliver(room, 1, 2, 0, 1000)
	ms[1].Deliver(room, 2, 2, 0, 1000)
	if !m.Left(room, 2) {
		t.Fatal("left refused")
	}
	b, _ := tr.Finish()
	if b.Expected != 5 || b.Delivered != 5 || b.Extra != 1 || b.Missing != 0 {
		t.Errorf("expected %d delivered %d extra %d missing %d, want 5 5 1 0", b.Expected, b.Delivered, b.Extra, b.Missing)
	}
}

// A room whose subscribers' joins were never answered owes its planned
// members every publish: a server that ignores joins does not look perfect.
func TestTrackerNeverJoined(t *testing.T) {
	tr, ms := newTracker(3, false, false)
	for _, m := range ms {
		m.AppendControl(nil, 0)
	}
	for range 4 {
		tr.Published(0, 0)
	}
	for _, m := range ms {
		m.End()
	}
	b, _ := tr.Finish()
	if b.Unseen != 4 || b.Expected != 12 || b.Missing != 12 || b.Unjoined != 3 {
		t.Errorf("unseen %d expected %d missing %d unjoined %d, want 4 12 12 3", b.Unseen, b.Expected, b.Missing, b.Unjoined)
	}
}

// Accounting a delivery allocates nothing: the hot path of a broadcast run
// (100,000 deliveries a second in results/broadcast.md).
func TestDeliverAllocs(t *testing.T) {
	tr, ms := newTracker(1, false, false)
	tr.b.ChurnEvery = 0
	feed(t, tr, ms, 1, []step{{'j', 0, 0}})
	room := []byte("r")
	seq := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		ms[0].Deliver(room, seq, 1, 0, 1000)
		seq++
		if seq%64 == 0 {
			tr.Sweep(2000)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per delivery, want 0", allocs)
	}
}
