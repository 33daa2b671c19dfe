// Package plan holds a scenario resolved into what the engine executes: the
// target, the transport framing, the pacing mode and the phases with their
// connection counts, rates and payload sizes. A Plan is validated by the
// scenarios package before an engine sees it; engines trust it.
package plan

import (
	"fmt"
	"time"
)

// Transport is the protocol a connection speaks.
type Transport string

// Transports sockbench drives.
const (
	WS  Transport = "ws"  // WebSocket over TCP; wss when Target.TLS is set.
	TCP Transport = "tcp" // TCP stream with a Framing.
	UDP Transport = "udp" // one message per datagram, connected UDP socket.
)

// Framing is how messages are delimited on a TCP stream.
type Framing string

// TCP framings.
const (
	Len32 Framing = "len32" // 4-byte big-endian length, then the payload.
	Line  Framing = "line"  // text header and padding, ended by '\n'.
	Raw   Framing = "raw"   // fixed-size records of Phase.Size bytes, no delimiter.
)

// Mode is the pacing discipline.
type Mode string

// Pacing modes.
const (
	// Open sends on a fixed schedule whatever the replies do; latency is
	// measured from the intended send time (coordinated omission corrected).
	Open Mode = "open"
	// Closed keeps Phase.InFlight messages outstanding per connection and
	// sends the next one when a reply arrives; latency equals service time.
	Closed Mode = "closed"
)

// Target is where the load goes.
type Target struct {
	URL       string    // as given by the user; empty when Embedded
	Embedded  bool      // the in-process reference server (URL filled in when it starts)
	Transport Transport // ws, tcp or udp
	TLS       bool      // wss://
	Insecure  bool      // skip TLS certificate verification
	Addr      string    // host:port to dial
}

// Phase is one stretch of the measured run with a constant shape.
type Phase struct {
	Name        string
	Duration    time.Duration
	Conns       int     // connections open during the phase
	ConnectRate float64 // new connections per second while ramping to Conns; 0 = no limit
	PerConnRate float64 // messages per second per connection (open mode)
	Size        int     // message payload bytes, measurement header included, framing excluded
	InFlight    int     // closed mode: messages outstanding per connection
	// Senders is how many of the connections send on the schedule (0: all).
	// In a broadcast plan only publishers send; subscribers only listen.
	Senders int
}

// Rate is the planned total send rate in messages per second with all of the
// phase's connections open.
func (p Phase) Rate() float64 {
	n := p.Conns
	if p.Senders > 0 {
		n = p.Senders
	}
	return p.PerConnRate * float64(n)
}

// Plan is a validated scenario, ready to run.
type Plan struct {
	Name    string
	Target  Target
	Framing Framing // TCP only
	Mode    Mode
	Warmup  time.Duration // after the first ramp, before the measured window; excluded from results
	Phases  []Phase       // measured window, in order
	// MaxInFlight caps the messages outstanding per connection in open loop
	// (0: no cap, pure open loop). With a cap, a connection whose replies lag
	// holds later sends back, as wrk2 does with one request per connection:
	// latency is still measured from the intended send time, service time
	// from the actual send.
	MaxInFlight    int
	Timeout        time.Duration // loss timeout: UDP replies later than this are lost; drain window at the end
	ConnectTimeout time.Duration // TCP connect plus handshake
	// Broadcast, if set, makes this a room broadcast run: connections are
	// subscribers and publishers of rooms on a server that speaks the
	// reference room protocol (docs/protocol.md), not echo clients.
	Broadcast *Broadcast
}

// Broadcast is the rooms and roles of a room broadcast plan. The first
// connection ids, as many as the rooms' members, are subscribers, each a
// member of one room (the first Rooms[0].Members join room 0, and so on);
// the Publishers after them publish to every room in turn. In Chat, there
// are no publishers: every subscriber publishes to its own room. The rooms
// package maps ids to roles.
type Broadcast struct {
	Namespace  string // the ns field of join, leave and publish (over WebSocket the URL path is the namespace)
	Rooms      []Room // in order; every room has at least one member
	Publishers int    // dedicated publisher connections (0 in Chat)
	Chat       bool   // members publish to their own room
	ToSelf     bool   // a publisher that is a member gets its own publish too (Socket.IO's io.to; default socket.to)
	TopRooms   int    // rooms reported on their own, largest first; the rest are reported together
	// ChurnEvery, if > 0, makes each subscriber leave its room after that
	// many deliveries and join it again as soon as the server confirms:
	// membership changes during the run, which the accounting must follow.
	ChurnEvery int
	// KeepAlive is how often a UDP member repeats its join, so that a
	// server that forgets silent members keeps it (0: rooms.KeepAliveEvery).
	KeepAlive time.Duration
}

// Room is one room of a broadcast plan.
type Room struct {
	Name    string
	Members int // subscribers planned
}

// MaxConns is the largest connection count of any phase.
func (p *Plan) MaxConns() int {
	n := 0
	for _, ph := range p.Phases {
		n = max(n, ph.Conns)
	}
	return n
}

// MaxSize is the largest payload size of any phase.
func (p *Plan) MaxSize() int {
	n := 0
	for _, ph := range p.Phases {
		n = max(n, ph.Size)
	}
	return n
}

// MeasuredDuration is the sum of the phase durations.
func (p *Plan) MeasuredDuration() time.Duration {
	var d time.Duration
	for _, ph := range p.Phases {
		d += ph.Duration
	}
	return d
}

// Describe is a one-line summary of the plan for logs and reports.
func (p *Plan) Describe() string {
	first := p.Phases[0]
	tr := string(p.Target.Transport)
	if p.Target.TLS {
		tr = "wss"
	}
	s := fmt.Sprintf("%s over %s, %d conns, %s loop", p.Name, tr, p.MaxConns(), p.Mode)
	if p.Mode == Open {
		s += fmt.Sprintf(", %.0f msg/s", first.Rate())
	} else {
		s += fmt.Sprintf(", %d in flight per conn", first.InFlight)
	}
	return s + fmt.Sprintf(", %d B, %s warm-up + %s measured", first.Size, p.Warmup, p.MeasuredDuration())
}
