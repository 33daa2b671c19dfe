package engine

import "github.com/sockbench/sockbench/internal/metrics"

// Slot states of the UDP ring.
const (
	slotFree = iota
	slotWaiting
	slotAnswered
	slotLost
)

// Answer outcomes.
const (
	answered    = iota // first reply: a latency sample
	wasAnswered        // a duplicate reply
	tooLate            // the message was counted lost, or is too old to know
)

type slot struct {
	seq      uint64
	intended int64
	sent     int64
	state    uint8
}

// ring tracks the messages of one connection by sequence number, so that
// replies can be matched in any order, duplicates and late replies told apart
// and messages past the loss timeout counted lost. It grows when a connection
// has more messages outstanding than it has slots; it never shrinks.
type ring struct {
	s       []slot
	mask    uint64
	lo      uint64 // oldest sequence number that may still be waiting
	hi      uint64 // next sequence number to be added
	pending int    // slots waiting
}

func (r *ring) init(n int) {
	size := 1
	for size < n {
		size <<= 1
	}
	r.s = make([]slot, size)
	r.mask = uint64(size - 1)
}

// add records message seq (always the next one) as waiting.
func (r *ring) add(seq uint64, intended, sent int64) {
	if i := seq & r.mask; r.s[i].state == slotWaiting {
		r.grow()
	}
	r.s[seq&r.mask] = slot{seq: seq, intended: intended, sent: sent, state: slotWaiting}
	r.hi = seq + 1
	r.pending++
}

func (r *ring) grow() {
	old := r.s
	r.init(2 * len(old))
	for _, sl := range old {
		if sl.state != slotFree {
			r.s[sl.seq&r.mask] = sl
		}
	}
}

// answerSlot marks seq answered and returns the outcome and the message's
// slot (its intended and actual send times), which is what latency is
// computed from: the target's echo of the header is not trusted for timing.
func (r *ring) answerSlot(seq uint64) (int, slot) {
	sl := &r.s[seq&r.mask]
	if sl.seq != seq || sl.state == slotFree {
		return tooLate, slot{}
	}
	switch sl.state {
	case slotWaiting:
		sl.state = slotAnswered
		r.pending--
		return answered, *sl
	case slotAnswered:
		return wasAnswered, *sl
	}
	return tooLate, *sl
}

// expire marks messages sent at or before cutoff and still waiting as lost, and
// returns how many, and how many of those were measured.
func (r *ring) expire(cutoff int64, win *metrics.Window) (n, measured int64) {
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
		if win.Measured(sl.intended) {
			measured++
		}
	}
	return n, measured
}

// drop forgets every waiting message and returns how many there were, and
// how many were measured.
func (r *ring) drop(win *metrics.Window) (n, measured int64) {
	for seq := r.lo; seq < r.hi; seq++ {
		sl := &r.s[seq&r.mask]
		if sl.seq == seq && sl.state == slotWaiting {
			sl.state = slotLost
			n++
			if win.Measured(sl.intended) {
				measured++
			}
		}
	}
	r.pending = 0
	r.lo = r.hi
	return n, measured
}
