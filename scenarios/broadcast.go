package scenarios

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/wire"
)

// Defaults of a broadcast scenario.
const (
	DefaultRooms      = 1
	DefaultPublishers = 1
	DefaultTopRooms   = 10
	DefaultSkew       = 1.0
)

// has reports whether the value at path was given (in the file or by a flag).
func (s *Spec) has(path string) bool {
	_, inFile := s.at[path]
	_, byFlag := s.flag[path]
	return inFile || byFlag
}

// broadcast resolves the broadcast block into the plan's rooms and roles,
// and turns every phase's conns (subscribers) into connections including
// the publishers, with the publishers' per-connection rate.
func (r *resolver) broadcast(p *plan.Plan, lim Limits) *plan.Broadcast {
	sb := r.s.Broadcast
	b := &plan.Broadcast{Namespace: sb.Namespace, Chat: sb.Chat, ToSelf: sb.ToSelf, TopRooms: DefaultTopRooms, ChurnEvery: sb.ChurnEvery}
	if b.Namespace == "" {
		b.Namespace = "/"
	}
	if len(b.Namespace) > wire.MaxRoomName {
		r.failf("broadcast.namespace", "must be at most %d bytes (got %d)", wire.MaxRoomName, len(b.Namespace))
	}
	if len(r.s.Phases) != 1 {
		r.failf("phases", "a broadcast scenario has exactly one phase (got %d)", len(r.s.Phases))
	}
	if p.Mode == plan.Closed {
		r.failf("mode", "a broadcast scenario runs in open mode: publishes go out on schedule whatever the deliveries do")
	}
	if p.Target.Transport == plan.TCP && p.Framing != plan.Len32 {
		r.failf("framing", "the room protocol runs over len32 framing on TCP (got %s)", p.Framing)
	}
	if sb.TopRooms != nil {
		b.TopRooms = *sb.TopRooms
		if b.TopRooms < 0 {
			r.failf("broadcast.top_rooms", "must be >= 0 (got %d)", b.TopRooms)
		}
	}
	if sb.KeepAlive != nil {
		b.KeepAlive = time.Duration(*sb.KeepAlive)
		if b.KeepAlive <= 0 {
			r.failf("broadcast.keepalive", "must be > 0 (got %s)", b.KeepAlive)
		}
	}
	if b.ChurnEvery < 0 {
		r.failf("broadcast.churn_every", "must be >= 0 (got %d); 0 means members stay", b.ChurnEvery)
	}
	publishers := DefaultPublishers
	switch {
	case sb.Publishers != nil && sb.Chat:
		r.failf("broadcast.publishers", "chat has no dedicated publishers: every member publishes; drop %s", r.name("broadcast.publishers"))
	case sb.Chat:
		publishers = 0
	case sb.Publishers != nil:
		publishers = *sb.Publishers
		if publishers < 1 {
			r.failf("broadcast.publishers", "must be >= 1 (got %d)", publishers)
		}
	}
	b.Publishers = publishers
	rate := 0.0
	if sb.PublishRate == nil {
		r.failf("broadcast", "missing publish_rate: publishes per second per room, like publish_rate: 10")
	} else if rate = *sb.PublishRate; rate <= 0 {
		r.failf("broadcast.publish_rate", "must be > 0 (got %s)", num(rate))
	}
	if len(p.Phases) == 0 {
		return b
	}
	subs := p.Phases[0].Conns
	sizes := r.roomSizes(subs)
	for i, n := range sizes {
		b.Rooms = append(b.Rooms, plan.Room{Name: fmt.Sprintf("room-%d", i), Members: n})
	}
	if len(b.Rooms) == 0 {
		return b
	}
	if lim.MaxConns > 0 && subs <= lim.MaxConns && subs+publishers > lim.MaxConns { // more subscribers alone: the phase says so
		r.failf("phases[0].conns", "%d subscribers and %d publishers need more open files than the limit allows (at most %d connections here); lower conns (a broadcast's subscribers and publishers must share one process and its clock)",
			subs, publishers, lim.MaxConns)
	}
	for i := range p.Phases {
		ph := &p.Phases[i]
		ph.Conns = subs + publishers
		if sb.Chat {
			ph.Senders = subs
			ph.PerConnRate = rate * float64(len(b.Rooms)) / float64(max(subs, 1))
		} else {
			ph.Senders = publishers
			ph.PerConnRate = rate * float64(len(b.Rooms)) / float64(max(publishers, 1))
		}
	}
	return b
}

// roomSizes spreads subs subscribers over the rooms as the scenario says.
func (r *resolver) roomSizes(subs int) []int {
	sb := r.s.Broadcast
	if len(sb.Sizes) > 0 {
		total := 0
		for i, n := range sb.Sizes {
			if n < 1 {
				r.failf(fmt.Sprintf("broadcast.sizes[%d]", i), "every room needs at least one subscriber (got %d)", n)
			}
			total += n
		}
		if sb.Rooms != nil && *sb.Rooms != len(sb.Sizes) {
			r.failf("broadcast.rooms", "is %d but sizes lists %d rooms; drop one of them", *sb.Rooms, len(sb.Sizes))
		}
		if sb.Distribution != "" {
			r.failf("broadcast.distribution", "sizes gives every room's size; drop distribution")
		}
		if total != subs {
			r.failf("broadcast.sizes", "add up to %d subscribers, but the phase has conns: %d; make them agree", total, subs)
		}
		return sb.Sizes
	}
	rooms := DefaultRooms
	if sb.Rooms != nil {
		rooms = *sb.Rooms
		if rooms < 1 {
			r.failf("broadcast.rooms", "must be >= 1 (got %d)", rooms)
			return nil
		}
	}
	if subs < rooms {
		r.failf("broadcast.rooms", "%d rooms need at least as many subscribers, but the phase has conns: %d", rooms, subs)
		return nil
	}
	skew := DefaultSkew
	if sb.Skew != nil {
		skew = *sb.Skew
	}
	switch sb.Distribution {
	case "", "uniform":
		if sb.Skew != nil {
			r.failf("broadcast.skew", "only applies to distribution: zipf")
		}
		return uniformSizes(subs, rooms)
	case "zipf":
		if skew <= 0 {
			r.failf("broadcast.skew", "must be > 0 (got %s)", num(skew))
			return nil
		}
		return zipfSizes(subs, rooms, skew)
	}
	r.failf("broadcast.distribution", "unknown distribution %q (want uniform or zipf, or give sizes)", sb.Distribution)
	return nil
}

// uniformSizes spreads n over k rooms, sizes differing by at most one.
func uniformSizes(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// zipfSizes gives room i a share of n proportional to 1/(i+1)^s, each room
// at least one member, rounded by largest remainder so they add up to n.
func zipfSizes(n, k int, s float64) []int {
	w := make([]float64, k)
	sum := 0.0
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
		sum += w[i]
	}
	out := make([]int, k)
	rem := make([]int, k)
	left := n - k // one each first
	given := 0
	frac := make([]float64, k)
	for i := range w {
		x := float64(left) * w[i] / sum
		out[i] = 1 + int(x)
		frac[i] = x - math.Floor(x)
		given += int(x)
		rem[i] = i
	}
	sort.SliceStable(rem, func(a, b int) bool { return frac[rem[a]] > frac[rem[b]] })
	for j := 0; j < left-given; j++ {
		out[rem[j]]++
	}
	return out
}
