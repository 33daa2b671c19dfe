package engine

// Slot states.
const (
	slotFree = iota
	slotWaiting
	slotAnswered
	slotLost     // counted lost; a reply now is late
	slotLateSeen // counted lost, and a late reply came: another is a duplicate
)

// Answer outcomes.
const (
	answered    = iota // first reply: a latency sample
	wasAnswered        // a duplicate reply
	tooLate            // a first reply to a message counted lost
)

type slot struct {
	seq      uint64
	intended int64
	sent     int64
	state    uint8
	measured bool // intended in the measured window
}

// ring tracks the messages of one connection by sequence number, so that
// replies can be matched in any order, duplicates and late replies told apart
// and messages past the loss timeout counted lost. It grows when a connection
// has more messages outstanding than it has slots; it never shrinks.
//
// A slot is reused once its message is no longer awaited, so a reply can
// come for a message whose slot is gone. Whether it is late (its message was
// lost) or a duplicate (it was answered) is then decided by the count of
// lost messages whose slots were reused without a late reply (evicted): late
// while there are such, a duplicate after. That keeps late within lost, on
// each side of the window start, and is exact unless a target both drops
// messages and duplicates replies long after.
type ring struct {
	s       []slot
	mask    uint64
	lo      uint64 // oldest sequence number that may still be waiting
	hi      uint64 // next sequence number to be added
	pending int    // slots waiting
	// firstMeasured is the sequence number of the first measured message
	// (noSeq until there is one): sequence numbers grow with intended
	// times, so every message from it on is measured.
	firstMeasured uint64
	// evicted counts lost messages that got no late reply before their
	// slot was reused: [0] warm-up, [1] measured.
	evicted [2]int64
}

// noSeq is a sequence number no message has.
const noSeq = ^uint64(0)

func (r *ring) init(n int) {
	size := 1
	for size < n {
		size <<= 1
	}
	r.s = make([]slot, size)
	r.mask = uint64(size - 1)
	r.firstMeasured = noSeq
}

// add records message seq (always the next one) as waiting; measured says
// whether its intended time is in the measured window.
func (r *ring) add(seq uint64, intended, sent int64, measured bool) {
	sl := &r.s[seq&r.mask]
	if sl.state == slotWaiting {
		r.grow()
		sl = &r.s[seq&r.mask]
	}
	if sl.state == slotLost {
		r.evicted[b2i(sl.measured)]++
	}
	*sl = slot{seq: seq, intended: intended, sent: sent, state: slotWaiting, measured: measured}
	if measured && r.firstMeasured == noSeq {
		r.firstMeasured = seq
	}
	r.hi = seq + 1
	r.pending++
}

func (r *ring) grow() {
	old := r.s
	first := r.firstMeasured
	r.init(2 * len(old))
	r.firstMeasured = first
	for _, sl := range old {
		if sl.state != slotFree {
			r.s[sl.seq&r.mask] = sl
		}
	}
}

// measured reports whether message seq (one that was sent) is measured.
func (r *ring) measured(seq uint64) bool { return seq >= r.firstMeasured }

// answerSlot marks seq (a sequence number that was sent) answered and
// returns the outcome and the message's slot (its intended and actual send
// times), which is what latency is computed from: the target's echo of the
// header is not trusted for timing. For a message whose slot is gone the
// slot returned is empty.
func (r *ring) answerSlot(seq uint64) (int, slot) {
	sl := &r.s[seq&r.mask]
	if sl.seq != seq || sl.state == slotFree {
		// Reused: see the type's comment.
		if e := &r.evicted[b2i(r.measured(seq))]; *e > 0 {
			*e--
			return tooLate, slot{}
		}
		return wasAnswered, slot{}
	}
	switch sl.state {
	case slotWaiting:
		sl.state = slotAnswered
		r.pending--
		return answered, *sl
	case slotLost:
		sl.state = slotLateSeen
		return tooLate, *sl
	}
	return wasAnswered, *sl
}

// expire marks messages sent at or before cutoff and still waiting as lost, and
// returns how many, and how many of those were measured.
func (r *ring) expire(cutoff int64) (n, measured int64) {
	for ; r.lo < r.hi; r.lo++ {
		sl := &r.s[r.lo&r.mask]
		if sl.seq != r.lo || sl.state != slotWaiting {
			continue
		}
		if sl.sent > cutoff {
			break
		}
		sl.state = slotLost
		r.pending--
		n++
		if sl.measured {
			measured++
		}
	}
	return n, measured
}

// drop forgets every waiting message and returns how many there were, and
// how many were measured.
func (r *ring) drop() (n, measured int64) {
	for seq := r.lo; seq < r.hi; seq++ {
		sl := &r.s[seq&r.mask]
		if sl.seq == seq && sl.state == slotWaiting {
			sl.state = slotLost
			n++
			if sl.measured {
				measured++
			}
		}
	}
	r.pending = 0
	r.lo = r.hi
	return n, measured
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
