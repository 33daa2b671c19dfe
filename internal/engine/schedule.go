package engine

import (
	"math"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
)

// regime is one phase's pacing, in force from `from` until the next
// regime's from.
type regime struct {
	from     int64 // ns on the run clock
	interval int64 // ns between sends on one connection; 0: no open-loop sends
	inflight int   // closed loop: messages outstanding per connection
	size     int   // payload bytes
}

// schedule is the whole send plan of a run as known so far: regimes in time
// order and the stop time. It is immutable; Pace and Stop publish a new one
// and close the old one's changed channel. Because a regime can be published
// before it begins, a connection that runs late still sends each phase's
// messages at that phase's rate, and nothing is sent at or after stopAt.
type schedule struct {
	regimes []regime
	stopAt  int64 // ns: no send intended at or after this
	changed chan struct{}
}

func newSchedule() *schedule {
	return &schedule{stopAt: math.MaxInt64, changed: make(chan struct{})}
}

// with returns a copy of s with r in force from r.from (dropping regimes
// that would start at or after it) and a fresh changed channel.
func (s *schedule) with(r regime) *schedule {
	n := &schedule{stopAt: s.stopAt, changed: make(chan struct{})}
	for _, x := range s.regimes {
		if x.from < r.from {
			n.regimes = append(n.regimes, x)
		}
	}
	n.regimes = append(n.regimes, r)
	return n
}

// stopped returns a copy of s that stops at ns.
func (s *schedule) stopped(ns int64) *schedule {
	return &schedule{regimes: s.regimes, stopAt: ns, changed: make(chan struct{})}
}

// regimeFor returns the index of the regime in force at t (0 before the
// first).
func (s *schedule) regimeFor(t int64) int {
	k := 0
	for i, r := range s.regimes {
		if r.from <= t {
			k = i
		}
	}
	return k
}

// regimeOf returns a regime built from a plan phase.
func regimeOf(p *plan.Plan, fromNs int64, ph plan.Phase) regime {
	r := regime{from: fromNs, size: ph.Size, inflight: ph.InFlight}
	if p.Mode == plan.Open && ph.PerConnRate > 0 {
		r.interval = max(1, int64(float64(time.Second)/ph.PerConnRate))
	}
	return r
}

// golden spreads connections over a send interval so that a total rate is
// smooth, not bursts: connection id sends at offset frac(id*phi)*interval.
const golden = 0.6180339887498949

// next returns the intended time of connection id's next open-loop send:
// the first slot of the regime in force that is after last (the previous
// send's intended time, -1 if none) and not before notBefore (when the
// connection opened). It returns ok=false if there is none before stopAt.
func (s *schedule) next(id uint32, last, notBefore int64) (t int64, r regime, ok bool) {
	t0 := max(last+1, notBefore)
	for k := s.regimeFor(t0); k < len(s.regimes); k++ {
		r = s.regimes[k]
		if r.interval == 0 {
			if k+1 < len(s.regimes) {
				t0 = max(t0, s.regimes[k+1].from)
			}
			continue
		}
		from := max(t0, r.from)
		off := int64(math.Mod(float64(id)*golden, 1) * float64(r.interval))
		base := r.from + off
		t = base
		if from > base {
			t = base + (from-base+r.interval-1)/r.interval*r.interval
		}
		if k+1 < len(s.regimes) && t >= s.regimes[k+1].from {
			t0 = s.regimes[k+1].from
			continue
		}
		return t, r, t < s.stopAt
	}
	return 0, regime{}, false
}
