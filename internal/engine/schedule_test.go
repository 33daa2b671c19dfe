package engine

import (
	"math"
	"testing"
)

func TestScheduleNext(t *testing.T) {
	// Connection 0 has offset 0, so its slots sit on the regime's grid.
	ms := int64(1_000_000)
	two := newSchedule().with(regime{from: 0, interval: 10 * ms}).with(regime{from: 100 * ms, interval: 25 * ms}).stopped(200 * ms)
	cases := []struct {
		name            string
		s               *schedule
		last, notBefore int64
		want            int64
		ok              bool
	}{
		{"first slot", two, -1, 0, 0, true},
		{"next on the grid", two, 0, 0, 10 * ms, true},
		{"opened between slots", two, -1, 15 * ms, 20 * ms, true},
		{"late writer does not skip", two, 30 * ms, 0, 40 * ms, true},
		{"last slot of the first regime", two, 80 * ms, 0, 90 * ms, true},
		{"second regime starts on its own grid", two, 90 * ms, 0, 100 * ms, true},
		{"second regime interval", two, 100 * ms, 0, 125 * ms, true},
		{"nothing at or after the stop", two, 175 * ms, 0, 0, false},
		{"no regime yet", newSchedule(), -1, 0, 0, false},
		{"closed-loop regime has no slots", newSchedule().with(regime{from: 0, inflight: 1}), -1, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, ok := tc.s.next(0, tc.last, tc.notBefore)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("next = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// Every connection sends exactly duration/interval messages in a window,
// whatever its offset.
func TestScheduleCountsPerConnection(t *testing.T) {
	ms := int64(1_000_000)
	s := newSchedule().with(regime{from: 0, interval: 25 * ms}).stopped(1000 * ms)
	for id := range uint32(50) {
		n, last := 0, int64(-1)
		for {
			t0, _, ok := s.next(id, last, 0)
			if !ok {
				break
			}
			n, last = n+1, t0
		}
		if n != 40 {
			t.Fatalf("connection %d: %d sends, want 40", id, n)
		}
	}
}

func TestScheduleWithReplacesLaterRegimes(t *testing.T) {
	s := newSchedule().with(regime{from: 0, interval: 1}).with(regime{from: 10, interval: 2}).with(regime{from: 5, interval: 3})
	if got, want := len(s.regimes), 2; got != want {
		t.Fatalf("%d regimes, want %d", got, want)
	}
	if s.stopAt != math.MaxInt64 {
		t.Fatalf("stopAt %d, want none", s.stopAt)
	}
}
