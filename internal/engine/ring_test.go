package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sockbench/sockbench/internal/metrics"
)

func newRing(n int) *ring {
	r := &ring{}
	r.init(n)
	return r
}

// openWindow returns a window measuring messages intended at or after start.
func openWindow(start int64) *metrics.Window {
	w := metrics.NewWindow()
	w.SetStart(start)
	return w
}

// addN adds seq from..to-1 with intended = sent = 10*(seq+1).
func addN(r *ring, from, to uint64) {
	for seq := from; seq < to; seq++ {
		at := int64(10 * (seq + 1))
		r.add(seq, at, at)
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
			setup:   func(r *ring) { addN(r, 0, 3) },
			answers: []step{{1, answered, 20}, {0, answered, 10}, {2, answered, 30}},
			pending: 0,
		},
		{
			name:    "duplicate",
			setup:   func(r *ring) { addN(r, 0, 2) },
			answers: []step{{0, answered, 10}, {0, wasAnswered, 10}, {0, wasAnswered, 10}},
			pending: 1,
		},
		{
			name: "after expiry",
			setup: func(r *ring) {
				addN(r, 0, 3)
				r.expire(25, openWindow(0)) // seq 0 and 1
			},
			answers: []step{{0, tooLate, 10}, {1, tooLate, 20}, {2, answered, 30}},
			pending: 0,
		},
		{
			name: "after drop",
			setup: func(r *ring) {
				addN(r, 0, 3)
				r.drop(openWindow(0))
			},
			answers: []step{{0, tooLate, 10}, {2, tooLate, 30}},
			pending: 0,
		},
		{
			name: "old seq after wrap",
			setup: func(r *ring) {
				// 4 slots; each answered before the next, so no growth.
				for seq := uint64(0); seq < 10; seq++ {
					addN(r, seq, seq+1)
					r.answer(seq)
				}
				addN(r, 10, 11)
			},
			// 1 and 6 are overwritten by 9 (slot 1) and 10 (slot 2);
			// 9 is still there, answered.
			answers: []step{{1, tooLate, 0}, {6, tooLate, 0}, {9, wasAnswered, 100}, {10, answered, 110}},
			pending: 0,
		},
		{
			name:    "never sent",
			setup:   func(r *ring) { addN(r, 0, 2) },
			answers: []step{{2, tooLate, 0}, {3, tooLate, 0}, {6, tooLate, 0}, {1 << 40, tooLate, 0}},
			pending: 2,
		},
		{
			name:    "empty ring, seq 0",
			setup:   func(r *ring) {},
			answers: []step{{0, tooLate, 0}},
			pending: 0,
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
				if outcome != tooLate {
					if got, want := intended, s.intended; got != want {
						t.Fatalf("answer %d (seq %d): intended: got %v, want %v", i, s.seq, got, want)
					}
				}
			}
			if got, want := r.pending, tc.pending; got != want {
				t.Fatalf("pending: got %v, want %v", got, want)
			}
		})
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(4)
			addN(r, 0, 8) // grows to 8 slots
			for _, seq := range tc.answered {
				if got, want := mustAnswer(r, seq), answered; got != want {
					t.Fatalf("answer %d: got %v, want %v", seq, got, want)
				}
			}
			win := openWindow(tc.start)
			for i, c := range tc.calls {
				n, measured := r.expire(c.cutoff, win)
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

func TestRingExpireWarmup(t *testing.T) {
	r := newRing(4)
	addN(r, 0, 3)
	n, measured := r.expire(1000, metrics.NewWindow()) // window not open yet
	if got, want := n, int64(3); got != want {
		t.Fatalf("n: got %v, want %v", got, want)
	}
	if got, want := measured, int64(0); got != want {
		t.Fatalf("measured: got %v, want %v", got, want)
	}
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
			addN(r, 0, 6)
			for _, seq := range tc.answered {
				mustAnswer(r, seq)
			}
			win := openWindow(tc.start)
			if tc.expireAt > 0 {
				r.expire(tc.expireAt, win)
			}
			n, measured := r.drop(win)
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
			if n, _ := r.drop(win); n != 0 {
				t.Fatalf("second drop: got %v, want 0", n)
			}
			if n, _ := r.expire(1<<62, win); n != 0 {
				t.Fatalf("expire after drop: got %v, want 0", n)
			}
			// The ring goes on after a drop.
			addN(r, 6, 7)
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
				addN(r, seq, seq+1)
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
// a map of every message's state.
func TestRingModel(t *testing.T) {
	const (
		waiting = iota
		done
		lost
	)
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			r := newRing(1 + rng.IntN(8))
			win := openWindow(int64(rng.IntN(2000)))
			state := map[uint64]int{}
			var hi uint64
			sentAt := func(seq uint64) int64 { return int64(seq) * 7 }
			for op := range 5000 {
				switch k := rng.IntN(10); {
				case k < 4:
					r.add(hi, sentAt(hi), sentAt(hi))
					state[hi] = waiting
					hi++
				case k < 8 && hi > 0:
					seq := hi - 1 - uint64(rng.IntN(int(min(hi, 40))))
					if rng.IntN(10) == 0 {
						seq = hi + uint64(rng.IntN(5)) // never sent
					}
					outcome, intended := r.answer(seq)
					st, sent := state[seq]
					switch {
					case !sent:
						if outcome != tooLate {
							t.Fatalf("op %d: answer(%d) never sent: got %v, want tooLate", op, seq, outcome)
						}
					case st == waiting:
						if outcome != answered || intended != sentAt(seq) {
							t.Fatalf("op %d: answer(%d) waiting: got %v %v, want answered %v", op, seq, outcome, intended, sentAt(seq))
						}
						state[seq] = done
					case st == done:
						// Known duplicate, or too old to remember.
						if outcome != wasAnswered && outcome != tooLate {
							t.Fatalf("op %d: answer(%d) answered: got %v, want wasAnswered or tooLate", op, seq, outcome)
						}
					case st == lost:
						if outcome != tooLate {
							t.Fatalf("op %d: answer(%d) lost: got %v, want tooLate", op, seq, outcome)
						}
					}
				case k == 8:
					cutoff := sentAt(hi) - int64(rng.IntN(300))
					var wantN, wantM int64
					for seq, st := range state {
						if st == waiting && sentAt(seq) <= cutoff {
							state[seq] = lost
							wantN++
							if win.Measured(sentAt(seq)) {
								wantM++
							}
						}
					}
					n, m := r.expire(cutoff, win)
					if n != wantN || m != wantM {
						t.Fatalf("op %d: expire(%d): got %v, %v, want %v, %v", op, cutoff, n, m, wantN, wantM)
					}
				case k == 9 && rng.IntN(20) == 0:
					var wantN, wantM int64
					for seq, st := range state {
						if st == waiting {
							state[seq] = lost
							wantN++
							if win.Measured(sentAt(seq)) {
								wantM++
							}
						}
					}
					n, m := r.drop(win)
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
			}
		})
	}
}

// answer is answerSlot with only the intended send time, as the tests
// check it.
func (r *ring) answer(seq uint64) (outcome int, intended int64) {
	outcome, sl := r.answerSlot(seq)
	return outcome, sl.intended
}
