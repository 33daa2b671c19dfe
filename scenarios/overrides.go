package scenarios

import (
	"fmt"
	"time"
)

// Overrides are values given on the command line that replace those of the
// scenario. A nil field was not given. The comments name the flag each field
// comes from; validation errors about an overridden value name that flag.
type Overrides struct {
	Conns       *int           // --conns, every phase
	ConnectRate *float64       // --connect-rate, every phase (connections/s)
	Rate        *float64       // --rate, every phase (total msg/s); clears per_conn_rate
	PerConnRate *float64       // --per-conn-rate, every phase (msg/s per connection); clears rate
	Duration    *time.Duration // --duration, every phase
	Warmup      *time.Duration // --warmup
	Timeout     *time.Duration // --timeout
	Size        *int           // --size, every phase (payload bytes)
	InFlight    *int           // --inflight, every phase (closed loop: messages outstanding per connection)
	Target      *string        // --target
	Insecure    *bool          // --insecure
	Rooms       *int           // --rooms (broadcast)
	Publishers  *int           // --publishers (broadcast)
	PublishRate *float64       // --publish-rate (broadcast: publishes/s per room)
}

// Apply sets the given overrides on s: per-phase values on every phase. A
// --rate replaces any per_conn_rate and a --per-conn-rate any rate, so the
// flag wins over the file (given both flags, Plan reports the conflict). s remembers which fields came from which flag, so
// that Plan's errors name the flag instead of a file position.
func (s *Spec) Apply(o Overrides) {
	if s.flag == nil {
		s.flag = map[string]string{}
	}
	set := func(path, flag string) {
		s.flag[path] = flag
		delete(s.at, path)
	}
	unset := func(path string) {
		delete(s.flag, path)
		delete(s.at, path)
	}
	if o.Target != nil {
		s.Target = *o.Target
		set("target", "--target")
	}
	if o.Insecure != nil {
		s.Insecure = *o.Insecure
		set("insecure", "--insecure")
	}
	if o.Warmup != nil {
		d := Duration(*o.Warmup)
		s.Warmup = &d
		set("warmup", "--warmup")
	}
	if o.Timeout != nil {
		d := Duration(*o.Timeout)
		s.Timeout = &d
		set("timeout", "--timeout")
	}
	s.applyBroadcast(o, set)
	for i := range s.Phases {
		ph := &s.Phases[i]
		path := func(key string) string { return fmt.Sprintf("phases[%d].%s", i, key) }
		if o.Duration != nil {
			ph.Duration = Duration(*o.Duration)
			set(path("duration"), "--duration")
		}
		if o.InFlight != nil {
			ph.InFlight = ptr(*o.InFlight)
			set(path("inflight"), "--inflight")
		}
		if o.Conns != nil {
			ph.Conns = *o.Conns
			set(path("conns"), "--conns")
		}
		if o.ConnectRate != nil {
			ph.ConnectRate = ptr(*o.ConnectRate)
			set(path("connect_rate"), "--connect-rate")
		}
		// Given both, keep both: Plan then reports the two flags as a conflict.
		if o.Rate != nil {
			ph.Rate = ptr(*o.Rate)
			set(path("rate"), "--rate")
			if o.PerConnRate == nil {
				ph.PerConnRate = nil
				unset(path("per_conn_rate"))
			}
		}
		if o.PerConnRate != nil {
			ph.PerConnRate = ptr(*o.PerConnRate)
			set(path("per_conn_rate"), "--per-conn-rate")
			if o.Rate == nil {
				ph.Rate = nil
				unset(path("rate"))
			}
		}
		if o.Size != nil {
			ph.Size = ptr(*o.Size)
			set(path("size"), "--size")
		}
	}
}

// applyBroadcast sets the broadcast overrides; on a scenario that is not a
// broadcast it remembers the first such flag, for Plan to refuse.
func (s *Spec) applyBroadcast(o Overrides, set func(path, flag string)) {
	given := []struct {
		ok   bool
		flag string
	}{{o.Rooms != nil, "--rooms"}, {o.Publishers != nil, "--publishers"}, {o.PublishRate != nil, "--publish-rate"}}
	b := s.Broadcast
	if b == nil {
		for _, g := range given {
			if g.ok && s.notBroadcast == "" {
				s.notBroadcast = g.flag
			}
		}
		return
	}
	if o.Rooms != nil {
		b.Rooms = ptr(*o.Rooms)
		set("broadcast.rooms", "--rooms")
		if len(b.Sizes) > 0 {
			b.Sizes = nil // the flag replaces the file's explicit sizes
		}
	}
	if o.Publishers != nil {
		b.Publishers = ptr(*o.Publishers)
		set("broadcast.publishers", "--publishers")
	}
	if o.PublishRate != nil {
		b.PublishRate = ptr(*o.PublishRate)
		set("broadcast.publish_rate", "--publish-rate")
	}
}

func ptr[T any](v T) *T { return &v }
