// Package rooms is the client's side of room broadcast accounting: which
// connections are members of which room over which room sequence numbers,
// every publish the server numbered, and every delivery of it. It turns
// deliveries into exact counts (expected, delivered, missing, duplicated,
// extra, late), publish-to-delivery latency per room and fan-out completion
// (publish to last owed delivery).
//
// The reference room protocol (docs/protocol.md) makes the counts exact: a
// member's joined and left replies give the range [from, until) of room
// sequence numbers it is owed, and every delivery carries its sequence
// number. A publish numbered r owes one delivery to each member whose range
// holds r, the publisher itself excluded unless it asked for its own copy.
//
// Membership and the per-member de-duplication live with each connection
// (Member, owned by whoever owns the connection); what connections share is
// the Tracker, one mutex per room. Every time is ns on the run's clock.
package rooms

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
)

// open is the until of a membership not yet left.
const open = math.MaxUint64

// Tracker is one run's broadcast accounting, shared by every connection.
type Tracker struct {
	b       *plan.Broadcast
	win     *metrics.Window
	timeout int64 // ns: the loss timeout: a publish settles this long after its intended time
	rooms   []*room
	byName  map[string]int
	ns      []byte
	names   [][]byte
	// starts[i] is the id of room i's first subscriber; subs the number of
	// subscribers (the ids after them are publishers).
	starts    []int
	subs      int
	udp       bool // members repeat their joins every keepAlive ns
	keepAlive int64
	stats     []*stats // per reported room: the TopRooms largest, then the rest
	sent      atomic.Int64
	settled   atomic.Int64 // publishes settled, measured or not
	extra     atomic.Int64 // deliveries for rooms sockbench never joined
	unjoined  atomic.Int64 // subscribers whose join was never answered
}

// stats is one reported room's (or the small rooms' aggregate) figures.
type stats struct {
	mu      sync.Mutex
	name    string
	rooms   int
	members int
	c       counts
	latency *hdr.Histogram
	fanout  *hdr.Histogram
}

type counts struct {
	publishes, fannedOut, expected, delivered, missing, duplicated, extra, late, complete, unseen int64
}

func (c *counts) add(o counts) {
	c.publishes += o.publishes
	c.fannedOut += o.fannedOut
	c.expected += o.expected
	c.delivered += o.delivered
	c.missing += o.missing
	c.duplicated += o.duplicated
	c.extra += o.extra
	c.late += o.late
	c.complete += o.complete
	c.unseen += o.unseen
}

// room is one room's membership ranges and the publishes awaiting their
// deliveries, under mu.
type room struct {
	mu    sync.Mutex
	idx   int
	st    *stats
	spans []span   // memberships: who, and which sequence numbers
	recs  []record // publishes by sequence number modulo len
	// base is the lowest sequence number not settled; top is one past the
	// highest seen. Numbers in [base, top) are awaited.
	base, top uint64
	started   bool // a member joined or a number was seen (base and top are valid)
	settled   bool // a number has been settled (base may no longer move down)
	// prevMeasured is whether the last number settled was a measured
	// publish: a number no member received inherits it.
	prevMeasured bool
	// changing counts joins and leaves sent and not yet answered: until
	// they are, who is owed what is not known, so nothing settles.
	changing  int
	c         counts
	published atomic.Int64 // measured publishes sent to the room
}

// span is one membership: connection conn was owed sequence numbers
// [from, until).
type span struct {
	conn        uint32
	from, until uint64
}

// record is one publish, known from its first delivery.
type record struct {
	seq       uint64
	used      bool
	measured  bool
	publisher uint32
	intended  int64
	recv      int32 // distinct members that got it
	last      int64 // ns: the last delivery
}

// New returns the tracker for plan p's rooms; win decides which publishes
// are measured.
func New(p *plan.Plan, win *metrics.Window) *Tracker {
	b := p.Broadcast
	t := &Tracker{b: b, win: win, timeout: int64(p.Timeout), byName: map[string]int{}, ns: []byte(b.Namespace),
		udp: p.Target.Transport == plan.UDP, keepAlive: int64(KeepAliveEvery)}
	if b.KeepAlive > 0 {
		t.keepAlive = int64(b.KeepAlive)
	}
	order := make([]int, len(b.Rooms))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return b.Rooms[order[i]].Members > b.Rooms[order[j]].Members })
	rest := &stats{latency: result.NewHistogram(), fanout: result.NewHistogram()}
	own := map[int]*stats{}
	for rank, i := range order {
		if rank < b.TopRooms {
			st := &stats{name: b.Rooms[i].Name, rooms: 1, members: b.Rooms[i].Members,
				latency: result.NewHistogram(), fanout: result.NewHistogram()}
			own[i] = st
			t.stats = append(t.stats, st)
		}
	}
	// A room's publishes within the loss timeout, twice over, fit its ring.
	var perRoom float64
	if ph := p.Phases[0]; len(b.Rooms) > 0 {
		perRoom = ph.Rate() / float64(len(b.Rooms))
		if b.Chat {
			perRoom = 0
			for _, ph := range p.Phases {
				for _, r := range b.Rooms {
					perRoom = max(perRoom, ph.PerConnRate*float64(r.Members))
				}
			}
		}
	}
	ringLen := ringSize(perRoom, p.Timeout)
	for i, r := range b.Rooms {
		rm := &room{idx: i, st: own[i], recs: make([]record, ringLen)}
		if rm.st == nil {
			rm.st = rest
			rest.rooms++
			rest.members += r.Members
		}
		t.rooms = append(t.rooms, rm)
		t.byName[r.Name] = i
		t.names = append(t.names, []byte(r.Name))
		t.starts = append(t.starts, t.subs)
		t.subs += r.Members
	}
	if rest.rooms > 0 {
		rest.name = "(" + itoa(rest.rooms) + " other rooms)"
		if rest.rooms == 1 {
			rest.name = "(1 other room)"
		}
		t.stats = append(t.stats, rest)
	}
	return t
}

// roomOf is the room subscriber conn is a member of (the first
// rooms[0].members ids join room 0, and so on), or -1 for a publisher.
func (t *Tracker) roomOf(conn uint32) int {
	if int(conn) >= t.subs {
		return -1
	}
	return sort.SearchInts(t.starts, int(conn)+1) - 1
}

// publishRoom is the room of conn's publish number seq. In chat a member
// publishes to its own room; otherwise each publisher visits every room in
// turn, publishers starting spread apart, so that every room gets the same
// publish rate.
func (t *Tracker) publishRoom(conn uint32, seq uint64) int {
	if t.b.Chat {
		return t.roomOf(conn)
	}
	k := int(conn) - t.subs
	start := k * len(t.names) / max(t.b.Publishers, 1)
	return int((uint64(start) + seq) % uint64(len(t.names)))
}

// ringSize is the number of publish records a room keeps: a power of two
// holding at least the publishes of four loss timeouts (a publish may wait
// two to settle), and at least 64.
func ringSize(rate float64, timeout time.Duration) int {
	need := int(4*rate*(timeout+SweepEvery).Seconds()) + 1
	n := 64
	if need > n {
		n = 1 << bits.Len(uint(need-1))
	}
	return n
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Room returns the index of the room named name, or -1 if the plan has none
// by that name.
func (t *Tracker) Room(name []byte) int {
	if i, ok := t.byName[string(name)]; ok {
		return i
	}
	return -1
}

// Published counts one publish sent to room i, intended at intended ns.
func (t *Tracker) Published(i int, intended int64) {
	t.sent.Add(1)
	if t.win.Measured(intended) {
		t.rooms[i].published.Add(1)
	}
}

// Pending is the number of publishes sent and not yet settled: what the
// drain at the end of a run waits for.
func (t *Tracker) Pending() int64 { return max(t.sent.Load()-t.settled.Load(), 0) }

// Changing records that a join or leave of room i was sent; Joined, Left
// or Ended (with answered false) must follow.
func (t *Tracker) Changing(i int) {
	r := t.rooms[i]
	r.mu.Lock()
	r.changing++
	r.mu.Unlock()
}

// Joined records that conn is owed room i's sequence numbers from from on.
func (t *Tracker) Joined(i int, conn uint32, from uint64) {
	r := t.rooms[i]
	r.mu.Lock()
	r.changing--
	r.spans = append(r.spans, span{conn: conn, from: from, until: open})
	switch {
	case !r.started:
		r.started, r.base, r.top = true, from, from
	case !r.settled && from < r.base:
		// Answers to joins are handled in whatever order the loops take
		// them: the room starts at the lowest.
		r.base = from
	}
	r.mu.Unlock()
}

// Left records that conn's membership of room i that began at from ends
// before until.
func (t *Tracker) Left(i int, conn uint32, from, until uint64) {
	r := t.rooms[i]
	r.mu.Lock()
	r.changing--
	for k := range r.spans {
		s := &r.spans[k]
		if s.conn == conn && s.from == from && s.until == open {
			s.until = until
			break
		}
	}
	r.mu.Unlock()
}

// Ended closes conn's membership of room i that began at from, when the
// connection ends without a left reply: it is taken to have been owed
// everything the room had numbered by then. unanswered says the connection
// had a join or leave of the room awaiting its answer.
func (t *Tracker) Ended(i int, conn uint32, from uint64, unanswered bool) {
	r := t.rooms[i]
	r.mu.Lock()
	if unanswered {
		r.changing--
	}
	until := r.top
	if !r.started {
		until = from
	}
	for k := range r.spans {
		s := &r.spans[k]
		if s.conn == conn && s.from == from && s.until == open {
			s.until = max(until, from)
			break
		}
	}
	r.mu.Unlock()
}

// NeverJoined records that a subscriber of room i ended with its join
// unanswered: it was owed nothing, and the result counts it (unjoined).
func (t *Tracker) NeverJoined(i int) {
	r := t.rooms[i]
	r.mu.Lock()
	r.changing--
	r.mu.Unlock()
	t.unjoined.Add(1)
}

// Extra counts a delivery of a publish intended at intended that its
// receiver was not owed (not a member of room i at its number), or, with
// i < 0, one for a room the plan does not have. Only measured publishes
// count.
func (t *Tracker) Extra(i int, intended int64) {
	if !t.win.Measured(intended) {
		return
	}
	if i < 0 {
		t.extra.Add(1)
		return
	}
	r := t.rooms[i]
	r.mu.Lock()
	r.c.extra++
	r.mu.Unlock()
}

// Duplicate counts a delivery of a publish intended at intended that its
// receiver already had. Only measured publishes count.
func (t *Tracker) Duplicate(i int, intended int64) {
	if !t.win.Measured(intended) {
		return
	}
	r := t.rooms[i]
	r.mu.Lock()
	r.c.duplicated++
	r.mu.Unlock()
}

// Delivered accounts the first delivery of room i's publish seq to member
// conn at now; publisher and intended come from the publish's measurement
// header. It reports whether the delivery counts: owed (not the
// publisher's own copy unless to_self), a plausible number, and within the
// loss timeout of the publish's intended time. Otherwise it is counted
// extra or late.
func (t *Tracker) Delivered(i int, conn uint32, seq uint64, publisher uint32, intended, now int64) bool {
	r := t.rooms[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	measured := t.win.Measured(intended)
	if !t.b.ToSelf && publisher == conn {
		if measured {
			r.c.extra++ // its own publish, which it did not ask for
		}
		return false
	}
	if !r.started {
		r.started, r.base, r.top = true, seq, seq
	}
	if !r.plausible(seq) {
		// Far beyond any number the room has reached: not a number this
		// server gave out in order (settling up to it could take for ever).
		if measured {
			r.c.extra++
		}
		return false
	}
	if seq < r.base {
		if measured {
			r.c.late++
		}
		return false
	}
	rec := &r.recs[seq%uint64(len(r.recs))]
	if !rec.used || rec.seq != seq {
		// The slot still holds an older publish: the ring is full, so
		// settle everything up to it.
		for seq >= r.base+uint64(len(r.recs)) {
			t.settleOne(r, r.base)
		}
		*rec = record{seq: seq, used: true, publisher: publisher, intended: intended,
			measured: measured}
		r.top = max(r.top, seq+1)
	}
	if now-intended > t.timeout {
		// As for echo: a delivery later than the loss timeout is lost.
		if measured {
			r.c.late++
		}
		return false
	}
	rec.recv++
	rec.last = max(rec.last, now)
	if rec.measured && r.st != nil {
		st := r.st
		if st.rooms > 1 {
			st.mu.Lock()
			observe(st.latency, now-intended)
			st.mu.Unlock()
		} else {
			observe(st.latency, now-intended) // a room of its own: under r.mu
		}
	}
	return true
}

func observe(h *hdr.Histogram, v int64) {
	_ = h.RecordValue(min(max(v, 0), result.HighestNs))
}

// plausible reports whether seq can be a number room r gives out next:
// within four rings of the highest it has reached. Under r.mu.
func (r *room) plausible(seq uint64) bool {
	return !r.started || seq < r.top+4*uint64(len(r.recs))
}

// plausible is room i's plausible, taking its lock.
func (t *Tracker) plausible(i int, seq uint64) bool {
	r := t.rooms[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.plausible(seq)
}

// Overdelivered takes back a delivery of room i's publish seq that a
// member accepted while its leave was unanswered and that the answer shows
// it was not owed (seq at or after its until): it becomes extra.
func (t *Tracker) Overdelivered(i int, seq uint64) {
	r := t.rooms[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := &r.recs[seq%uint64(len(r.recs))]
	if seq >= r.base && rec.used && rec.seq == seq {
		rec.recv--
		if rec.measured {
			r.c.extra++
		}
		return
	}
	r.c.extra++ // settled already (cannot happen while the leave was unanswered)
}

// owed counts the members owed room r's publish seq from publisher. Under
// r.mu.
func (t *Tracker) owed(r *room, seq uint64, publisher uint32) int {
	n := 0
	for _, s := range r.spans {
		if seq >= s.from && seq < s.until && (t.b.ToSelf || s.conn != publisher) {
			n++
		}
	}
	return n
}

// SweepEvery is how often Sweep should run.
const SweepEvery = 10 * time.Millisecond

// Sweep settles, in each room, publishes in sequence order while they are
// complete (every owed delivery arrived) or older than the loss timeout,
// counted from their intended send time, as an echo message is. A room
// with a join or leave awaiting its answer waits (up to twice the timeout):
// who is owed what is not known yet. Call it every SweepEvery.
func (t *Tracker) Sweep(now int64) {
	for _, r := range t.rooms {
		r.mu.Lock()
		for r.started && r.base < r.top {
			rec := &r.recs[r.base%uint64(len(r.recs))]
			have := rec.used && rec.seq == r.base
			if have && r.changing > 0 && now-rec.intended < 2*t.timeout {
				break
			}
			if have && int(rec.recv) < t.owed(r, r.base, rec.publisher) && now-rec.intended < t.timeout {
				break // still arriving
			}
			if !have && !t.gapDue(r, now) {
				break
			}
			t.settleOne(r, r.base)
		}
		t.prune(r)
		r.mu.Unlock()
	}
}

// Run sweeps every SweepEvery, reading the run clock with now, until the
// returned stop is called (stop may be called more than once).
func (t *Tracker) Run(now func() int64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(SweepEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				t.Sweep(now())
			case <-done:
				return
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		<-finished
	})
}

// gapDue reports whether room r's lowest awaited sequence number, which no
// member has received, can be given up: a later publish of the room is
// past the loss timeout (twice that while a join or leave is unanswered).
// Under r.mu.
func (t *Tracker) gapDue(r *room, now int64) bool {
	wait := t.timeout
	if r.changing > 0 {
		wait = 2 * t.timeout
	}
	for s := r.base + 1; s < r.top; s++ {
		rec := &r.recs[s%uint64(len(r.recs))]
		if rec.used && rec.seq == s {
			return now-rec.intended >= wait
		}
	}
	return false
}

// settleOne settles room r's publish seq (== r.base) and advances base.
// A number no member received is a publish the server fanned out that
// every member missed; it counts as measured if the publish before it did.
// Under r.mu.
func (t *Tracker) settleOne(r *room, seq uint64) {
	rec := &r.recs[seq%uint64(len(r.recs))]
	have := rec.used && rec.seq == seq
	measured := r.prevMeasured
	var publisher uint32 = math.MaxUint32
	if have {
		publisher, measured = rec.publisher, rec.measured
	}
	if measured {
		want := int64(t.owed(r, seq, publisher))
		if !have && t.b.Chat && !t.b.ToSelf && want > 0 {
			want-- // its publisher, unknown, was one of the members and not owed it
		}
		got := int64(0)
		if have {
			got = min(int64(rec.recv), want)
		}
		r.c.fannedOut++
		r.c.expected += want
		r.c.delivered += got
		r.c.missing += want - got
		if have && got == want && want > 0 {
			r.c.complete++
			st := r.st
			if st.rooms > 1 {
				st.mu.Lock()
				observe(st.fanout, rec.last-rec.intended)
				st.mu.Unlock()
			} else {
				observe(st.fanout, rec.last-rec.intended)
			}
		}
	}
	rec.used = false
	r.prevMeasured, r.settled = measured, true
	r.base = seq + 1
	t.settled.Add(1)
}

// prune drops memberships that ended before every sequence number still
// awaited. Under r.mu.
func (t *Tracker) prune(r *room) {
	k := 0
	for _, s := range r.spans {
		if s.until >= r.base { // one that ended at base is kept for unseen publishes
			r.spans[k] = s
			k++
		}
	}
	r.spans = r.spans[:k]
}

// unseen accounts, at the end, room r's measured publishes that no member
// received and whose number no member saw (after the last number seen, or
// all of them): the server may have numbered them or not, so the client
// cannot know whom they were owed. Each is counted missing for every member
// of the room at its last numbered publish (if no number was settled,
// every member that joined; if none did, the members planned), the
// publisher excluded in chat unless to_self. Under r.mu.
func (t *Tracker) unseen(r *room) {
	n := r.published.Load() - r.c.fannedOut
	if n <= 0 {
		return
	}
	members := int64(0)
	for _, s := range r.spans {
		if !r.settled || r.top-1 >= s.from && r.top-1 < s.until {
			members++
		}
	}
	if len(r.spans) == 0 {
		members = int64(t.b.Rooms[r.idx].Members) // nobody's join was answered
	}
	if t.b.Chat && !t.b.ToSelf && members > 0 {
		members--
	}
	r.c.unseen += n
	r.c.expected += n * members
	r.c.missing += n * members
}

// Finish settles everything still awaited (the run is over: what has not
// arrived is missing) and returns the accounting.
func (t *Tracker) Finish() (*result.Broadcast, error) {
	for _, r := range t.rooms {
		r.mu.Lock()
		for r.started && r.base < r.top {
			t.settleOne(r, r.base)
		}
		t.unseen(r)
		r.c.publishes = r.published.Load()
		r.mu.Unlock()
	}
	out := &result.Broadcast{
		Namespace: t.b.Namespace, Rooms: len(t.b.Rooms), Subscribers: t.subs,
		Publishers: t.b.Publishers,
	}
	if t.b.Chat {
		out.Publishers = out.Subscribers
	}
	per := map[*stats]*counts{}
	for _, st := range t.stats {
		per[st] = &counts{}
	}
	for _, r := range t.rooms {
		r.mu.Lock()
		per[r.st].add(r.c)
		r.mu.Unlock()
	}
	fan := result.NewHistogram()
	var all counts
	for _, st := range t.stats {
		c := per[st]
		all.add(*c)
		st.mu.Lock()
		lat, err := result.FromHDR(st.latency)
		if err != nil {
			st.mu.Unlock()
			return nil, err
		}
		fo, err := result.FromHDR(st.fanout)
		fan.Merge(st.fanout)
		st.mu.Unlock()
		if err != nil {
			return nil, err
		}
		out.PerRoom = append(out.PerRoom, result.RoomResult{
			Name: st.name, Rooms: st.rooms, Members: st.members, Publishes: c.publishes,
			Expected: c.expected, Delivered: c.delivered, Missing: c.missing,
			Duplicated: c.duplicated, Extra: c.extra, Latency: lat, FanOut: fo,
		})
	}
	out.Publishes = all.publishes
	out.FannedOut, out.Expected, out.Delivered, out.Missing = all.fannedOut, all.expected, all.delivered, all.missing
	out.Duplicated, out.Extra, out.Late, out.Complete = all.duplicated, all.extra+t.extra.Load(), all.late, all.complete
	out.Unseen = all.unseen
	out.Unjoined = t.unjoined.Load()
	h, err := result.FromHDR(fan)
	if err != nil {
		return nil, err
	}
	out.FanOut = h
	return out, nil
}
