package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func newRing(n int) *ring {
	r := &ring{}
	r.init(n)
	return r
}

// addN adds seq from..to-1 with intended = sent = 10*(seq+1), measured
// from intended start on.
func addN(r *ring, from, to uint64, start int64) {
	for seq := from; seq < to; seq++ {
		at := int64(10 * (seq + 1))
		r.add(seq, at, at, at >= start)
	}
}

func TestRingInitSize(t *testing.T) {
	for _, tc := range []struct{ n, size int }{{0, 1}, {1, 1}, {2, 2}, {3, 4}, {64, 64}, {65, 128}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			r := newRing(tc.n)
			if got, want := len(r.s), tc.size; got != want {
				t.Fatalf("slots: got %v, want %v", got, want)
			}
			if got, want := r.mask, uint64(tc.size-1); got != want {
				t.Fatalf("mask: got %v, want %v", got, want)
			}
		})
	}
}

func TestRingAnswer(t *testing.T) {
	type step struct {
		seq      uint64
		outcome  int
		intended int64
	}
	for _, tc := range []struct {
		name    string
		setup   func(r *ring)
		answers []step
		pending int // after the answers
	}{
		{
			name:    "answered first time",
			setup:   func(r *ring) { addN(r, 0, 3, 0) },
			answers: []step{{1, answered, 20}, {0, answered, 10}, {2, answered, 30}},
			pending: 0,
		},
		{
			name:    "duplicate",
			setup:   func(r *ring) { addN(r, 0, 2, 0) },
			answers: []step{{0, answered, 10}, {0, wasAnswered, 10}, {0, wasAnswered, 10}},
			pending: 1,
		},
		{
			name: "after expiry: late once, then a duplicate",
			setup: func(r *ring) {
				addN(r, 0, 3, 0)
				r.expire(25) // seq 0 and 1
			},
			answers: []step{{0, tooLate, 10}, {1, tooLate, 20}, {0, wasAnswered, 10}, {2, answered, 30}},
			pending: 0,
		},
		{
			name: "after drop",
			setup: func(r *ring) {
				addN(r, 0, 3, 0)
				r.drop()
			},
			answers: []step{{0, tooLate, 10}, {2, tooLate, 30}, {2, wasAnswered, 30}},
			pending: 0,
		},
		{
			name: "old answered seq after wrap: a duplicate",
			setup: func(r *ring) {
				// 4 slots; each answered before the next, so no growth.
				for seq := uint64(0); seq < 10; seq++ {
					addN(r, seq, seq+1, 0)
					r.answer(seq)
				}
				addN(r, 10, 11, 0)
			},
			// 1 and 6 are overwritten by 9 (slot 1) and 10 (slot 2);
			// 9 is still there, answered.
			answers: []step{{1, wasAnswered, 0}, {6, wasAnswered, 0}, {9, wasAnswered, 100}, {10, answered, 110}},
			pending: 0,
		},
		{
			name: "old lost seq after wrap: late as many times as were lost",
			setup: func(r *ring) {
				// 4 slots: 0 and 1 lost, 2 and 3 answered, then 4..7
				// reuse the slots.
				addN(r, 0, 4, 0)
				r.expire(20)
				r.answer(2)
				r.answer(3)
				addN(r, 4, 8, 0)
			},
			answers: []step{{0, tooLate, 0}, {1, tooLate, 0}, {0, wasAnswered, 0}, {3, wasAnswered, 0}, {5, answered, 60}},
			pending: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(4)
			tc.setup(r)
			for i, s := range tc.answers {
				outcome, intended := r.answer(s.seq)
				if got, want := outcome, s.outcome; got != want {
					t.Fatalf("answer %d (seq %d): outcome: got %v, want %v", i, s.seq, got, want)
				}
				if got, want := intended, s.intended; got != want {
					t.Fatalf("answer %d (seq %d): intended: got %v, want %v", i, s.seq, got, want)
				}
			}
			if got, want := r.pending, tc.pending; got != want {
				t.Fatalf("pending: got %v, want %v", got, want)
			}
		})
	}
}

// A late reply counts on the side of the window its message was on, also
// when the message's slot is gone.
func TestRingLateSide(t *testing.T) {
	r := newRing(4)
	addN(r, 0, 4, 25) // 0, 1 warm-up (intended 10, 20); 2, 3 measured
	r.expire(40)      // all four lost
	addN(r, 4, 8, 25) // every slot reused
	for _, tc := range []struct {
		seq      uint64
		measured bool
		outcome  int
	}{
		{0, false, tooLate}, {2, true, tooLate}, {3, true, tooLate}, {1, false, tooLate},
		{3, true, wasAnswered}, {0, false, wasAnswered},
	} {
		if got := r.measured(tc.seq); got != tc.measured {
			t.Fatalf("seq %d: measured %v, want %v", tc.seq, got, tc.measured)
		}
		if got, _ := r.answer(tc.seq); got != tc.outcome {
			t.Fatalf("seq %d: outcome %v, want %v", tc.seq, got, tc.outcome)
		}
	}
}

func TestRingExpire(t *testing.T) {
	type call struct {
		cutoff      int64
		n, measured int64
	}
	for _, tc := range []struct {
		name     string
		start    int64    // window start (intended = sent = 10*(seq+1))
		answered []uint64 // answered before expiring
		calls    []call
		pending  int
	}{
		{
			name:  "stops at first sent after cutoff",
			start: 0,
			calls: []call{
				{cutoff: 5, n: 0, measured: 0},
				{cutoff: 35, n: 3, measured: 3}, // 10, 20, 30
				{cutoff: 35, n: 0, measured: 0},
				{cutoff: 45, n: 1, measured: 1}, // 40
				{cutoff: 1000, n: 4, measured: 4},
				{cutoff: 2000, n: 0, measured: 0},
			},
			pending: 0,
		},
		{
			name:     "skips answered",
			start:    0,
			answered: []uint64{0, 2, 3, 6},
			calls: []call{
				{cutoff: 45, n: 1, measured: 1}, // seq 1
				{cutoff: 75, n: 2, measured: 2}, // seq 4, 5
				{cutoff: 1000, n: 1, measured: 1},
			},
			pending: 0,
		},
		{
			name:     "answered after the cutoff do not stop it",
			start:    0,
			answered: []uint64{4, 5},
			calls:    []call{{cutoff: 65, n: 4, measured: 4}}, // seq 0..3
			pending:  2,                                       // seq 6, 7
		},
		{
			name:  "measured counts use the window",
			start: 35, // seq 3 onwards (intended 40..80) measured
			calls: []call{
				{cutoff: 25, n: 2, measured: 0},
				{cutoff: 55, n: 3, measured: 2},
				{cutoff: 1000, n: 3, measured: 3},
			},
			pending: 0,
		},
		{
			name:  "window not open yet",
			start: 1 << 62,
			calls: []call{{cutoff: 1000, n: 8, measured: 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(4)
			addN(r, 0, 8, tc.start) // grows to 8 slots
			for _, seq := range tc.answered {
				if got, want := mustAnswer(r, seq), answered; got != want {
					t.Fatalf("answer %d: got %v, want %v", seq, got, want)
				}
			}
			for i, c := range tc.calls {
				n, measured := r.expire(c.cutoff)
				if got, want := n, c.n; got != want {
					t.Fatalf("call %d (cutoff %d): n: got %v, want %v", i, c.cutoff, got, want)
				}
				if got, want := measured, c.measured; got != want {
					t.Fatalf("call %d (cutoff %d): measured: got %v, want %v", i, c.cutoff, got, want)
				}
			}
			if got, want := r.pending, tc.pending; got != want {
				t.Fatalf("pending: got %v, want %v", got, want)
			}
		})
	}
}

func mustAnswer(r *ring, seq uint64) int {
	o, _ := r.answer(seq)
	return o
}

func TestRingDrop(t *testing.T) {
	for _, tc := range []struct {
		name        string
		start       int64
		answered    []uint64
		expireAt    int64 // 0: no expire
		n, measured int64
	}{
		{"all waiting", 0, nil, 0, 6, 6},
		{"some answered", 0, []uint64{1, 4}, 0, 4, 4},
		{"after expire", 0, nil, 25, 4, 4},
		{"window", 45, []uint64{5}, 15, 4, 1}, // 1..4 left; of those only 4 (intended 50) measured
		{"none", 0, []uint64{0, 1, 2, 3, 4, 5}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(8)
			addN(r, 0, 6, tc.start)
			for _, seq := range tc.answered {
				mustAnswer(r, seq)
			}
			if tc.expireAt > 0 {
				r.expire(tc.expireAt)
			}
			n, measured := r.drop()
			if got, want := n, tc.n; got != want {
				t.Fatalf("n: got %v, want %v", got, want)
			}
			if got, want := measured, tc.measured; got != want {
				t.Fatalf("measured: got %v, want %v", got, want)
			}
			if got, want := r.pending, 0; got != want {
				t.Fatalf("pending: got %v, want %v", got, want)
			}
			// Dropped messages are gone; nothing is dropped twice.
			if n, _ := r.drop(); n != 0 {
				t.Fatalf("second drop: got %v, want 0", n)
			}
			if n, _ := r.expire(1 << 62); n != 0 {
				t.Fatalf("expire after drop: got %v, want 0", n)
			}
			// The ring goes on after a drop.
			addN(r, 6, 7, tc.start)
			if got, want := mustAnswer(r, 6), answered; got != want {
				t.Fatalf("answer after drop: got %v, want %v", got, want)
			}
		})
	}
}

func TestRingGrowKeepsWaiting(t *testing.T) {
	for _, tc := range []struct {
		name     string
		init     int
		total    uint64
		answered func(seq uint64) bool // answered right after add
	}{
		{"none answered", 4, 100, func(uint64) bool { return false }},
		{"one slot", 1, 33, func(uint64) bool { return false }},
		{"every third answered", 4, 200, func(seq uint64) bool { return seq%3 == 0 }},
		{"wrapped before growing", 4, 60, func(seq uint64) bool { return seq < 20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(tc.init)
			waiting := 0
			for seq := uint64(0); seq < tc.total; seq++ {
				addN(r, seq, seq+1, 0)
				if tc.answered(seq) {
					mustAnswer(r, seq)
				} else {
					waiting++
				}
			}
			if got, want := r.pending, waiting; got != want {
				t.Fatalf("pending: got %v, want %v", got, want)
			}
			if len(r.s) < waiting {
				t.Fatalf("%d slots for %d waiting messages", len(r.s), waiting)
			}
			for seq := uint64(0); seq < tc.total; seq++ {
				if tc.answered(seq) {
					continue
				}
				outcome, intended := r.answer(seq)
				if got, want := outcome, answered; got != want {
					t.Fatalf("seq %d: outcome: got %v, want %v", seq, got, want)
				}
				if got, want := intended, int64(10*(seq+1)); got != want {
					t.Fatalf("seq %d: intended: got %v, want %v", seq, got, want)
				}
			}
			if got, want := r.pending, 0; got != want {
				t.Fatalf("pending after answering all: got %v, want %v", got, want)
			}
		})
	}
}

// TestRingModel drives the ring with random operations and checks it against
// a map of every message's state. With duplicates of answered messages (the
// ring may then take a duplicate for a late reply once a lost message's slot
// is gone) it checks the bounds that always hold: late replies never
// outnumber lost messages, on either side of the window start. Without them
// it checks that every late reply is counted late, exactly once.
func TestRingModel(t *testing.T) {
	const (
		waiting = iota
		done
		lost
		lateSeen
	)
	for _, dups := range []bool{true, false} {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("dups=%v/%d", dups, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 1))
				r := newRing(1 + rng.IntN(8))
				start := int64(rng.IntN(2000))
				state := map[uint64]int{}
				var hi uint64
				var nLost, nLate [2]int64 // by side: warm-up, measured
				sentAt := func(seq uint64) int64 { return int64(seq) * 7 }
				side := func(seq uint64) int { return b2i(sentAt(seq) >= start) }
				for op := range 5000 {
					switch k := rng.IntN(10); {
					case k < 4:
						r.add(hi, sentAt(hi), sentAt(hi), sentAt(hi) >= start)
						state[hi] = waiting
						hi++
					case k < 8 && hi > 0:
						seq := hi - 1 - uint64(rng.IntN(int(min(hi, 40))))
						st := state[seq]
						if !dups && (st == done || st == lateSeen) {
							continue
						}
						outcome, intended := r.answer(seq)
						if got, want := r.measured(seq), side(seq) == 1; got != want {
							t.Fatalf("op %d: measured(%d): got %v, want %v", op, seq, got, want)
						}
						if outcome == tooLate {
							nLate[side(seq)]++
						}
						switch st {
						case waiting:
							if outcome != answered || intended != sentAt(seq) {
								t.Fatalf("op %d: answer(%d) waiting: got %v %v, want answered %v", op, seq, outcome, intended, sentAt(seq))
							}
							state[seq] = done
						case done, lateSeen:
							if outcome == answered {
								t.Fatalf("op %d: answer(%d) answered before: got answered again", op, seq)
							}
						case lost:
							if !dups && outcome != tooLate {
								t.Fatalf("op %d: answer(%d) lost, no duplicates: got %v, want tooLate", op, seq, outcome)
							}
							if outcome == answered {
								t.Fatalf("op %d: answer(%d) lost: got answered", op, seq)
							}
							state[seq] = lateSeen
						}
					case k == 8:
						cutoff := sentAt(hi) - int64(rng.IntN(300))
						var wantN, wantM int64
						for seq, st := range state {
							if st == waiting && sentAt(seq) <= cutoff {
								state[seq] = lost
								nLost[side(seq)]++
								wantN++
								wantM += int64(side(seq))
							}
						}
						n, m := r.expire(cutoff)
						if n != wantN || m != wantM {
							t.Fatalf("op %d: expire(%d): got %v, %v, want %v, %v", op, cutoff, n, m, wantN, wantM)
						}
					case k == 9 && rng.IntN(20) == 0:
						var wantN, wantM int64
						for seq, st := range state {
							if st == waiting {
								state[seq] = lost
								nLost[side(seq)]++
								wantN++
								wantM += int64(side(seq))
							}
						}
						n, m := r.drop()
						if n != wantN || m != wantM {
							t.Fatalf("op %d: drop: got %v, %v, want %v, %v", op, n, m, wantN, wantM)
						}
					}
					var pending int
					for _, st := range state {
						if st == waiting {
							pending++
						}
					}
					if got, want := r.pending, pending; got != want {
						t.Fatalf("op %d: pending: got %v, want %v", op, got, want)
					}
					for s := range 2 {
						if nLate[s] > nLost[s] {
							t.Fatalf("op %d: side %d: %d late replies for %d lost messages", op, s, nLate[s], nLost[s])
						}
					}
				}
			})
		}
	}
}

// answer is answerSlot with only the intended send time, as the tests
// check it.
func (r *ring) answer(seq uint64) (outcome int, intended int64) {
	outcome, sl := r.answerSlot(seq)
	return outcome, sl.intended
}
