// Package scenarios reads load-test scenarios: the Spec written in YAML (a file
// or one of the built-ins embedded in the binary), overridden by command-line
// flags, validated, and resolved into the plan.Plan an engine executes.
//
// Every configuration problem is reported as an *Error that says where the
// offending value came from (file:line:column, or the flag) and how to fix it.
//
// A scenario file looks like this:
//
//	name: echo
//	description: "WebSocket echo, 1,000 connections, 10,000 msg/s"
//	target: ""          # empty: the embedded reference server
//	transport: ws
//	warmup: 3s
//	phases:
//	  - name: steady
//	    duration: 20s
//	    conns: 1000
//	    connect_rate: 2000
//	    rate: 10000
//	    size: 64
//	thresholds:
//	  - "p99 < 50ms"
//	  - "error_rate < 0.1%"
package scenarios

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
)

// Defaults for keys a scenario leaves out.
const (
	DefaultWarmup         = 2 * time.Second
	DefaultTimeout        = 1 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultConnectRate    = 1000.0 // new connections per second
	DefaultSize           = 64     // payload bytes, measurement header included
	DefaultInFlight       = 1      // closed mode: messages outstanding per connection
)

// Limits on payload sizes.
const (
	// MaxSize is the largest payload in bytes a phase may send (1 MiB).
	MaxSize = 1 << 20
	// MaxUDPSize is the largest UDP payload in bytes (65,535 less the IPv4 and
	// UDP headers); a bigger message cannot be one datagram.
	MaxUDPSize = 65507
)

// Spec is a scenario as written in YAML, with any flag overrides applied.
// Optional keys that were left out are nil (or empty) here and take their
// defaults when the Spec is resolved by Plan, so the Spec stored in a result
// shows what the user asked for and the Plan shows what ran.
//
// The JSON form (snake_case keys, durations as strings like "20s") is the one
// stored in result files as the scenario as run.
type Spec struct {
	// Name identifies the scenario in reports. Required.
	Name string `json:"name"`
	// Description is one line for `sockbench scenarios` and reports.
	Description string `json:"description,omitempty"`
	// Target is the server URL: ws://host[:port][/path], wss://...,
	// tcp://host:port or udp://host:port. Empty runs against the embedded
	// reference server.
	Target string `json:"target,omitempty"`
	// Transport is ws, tcp or udp. It chooses the embedded server's protocol;
	// with a Target URL it is taken from the scheme, and a different value
	// here is an error. Default ws.
	Transport plan.Transport `json:"transport,omitempty"`
	// Framing is how TCP messages are delimited: len32 (default), line or
	// raw. Only valid with the tcp transport.
	Framing plan.Framing `json:"framing,omitempty"`
	// Mode is open (default: send on a fixed schedule, latency corrected for
	// coordinated omission) or closed (send the next message when a reply
	// arrives).
	Mode plan.Mode `json:"mode,omitempty"`
	// Insecure skips TLS certificate verification for wss:// targets.
	Insecure bool `json:"insecure,omitempty"`
	// Warmup is run after the first ramp and excluded from the results.
	// Default 2s; 0s is allowed.
	Warmup *Duration `json:"warmup,omitempty"`
	// Timeout is the loss timeout (a reply later than this is lost) and the
	// drain window at the end of the run. Default 1s; must be > 0.
	Timeout *Duration `json:"timeout,omitempty"`
	// ConnectTimeout bounds connecting plus any handshake. Default 5s.
	ConnectTimeout *Duration `json:"connect_timeout,omitempty"`
	// MaxInFlight caps, in open mode, the messages outstanding per
	// connection; later sends wait (and show as send lag) until replies come,
	// as wrk2 does with one request per connection. Default 0: no cap.
	MaxInFlight *int `json:"max_inflight,omitempty"`
	// Phases are the measured window, run in order. At least one.
	Phases []Phase `json:"phases"`
	// Thresholds are pass/fail conditions on the results, such as
	// "p99 < 50ms" (see ParseThreshold).
	Thresholds []Threshold `json:"thresholds,omitempty"`
	// Broadcast, if set, makes the scenario a room broadcast: the phase's
	// conns are subscribers spread over rooms, publishers publish to the
	// rooms, and every delivery is accounted for. See Broadcast.
	Broadcast *Broadcast `json:"broadcast,omitempty"`

	// File is where the Spec was read from ("echo.yaml", "builtin:echo");
	// it is not a YAML key.
	File string `json:"file,omitempty"`

	at   map[string]position // field path -> where its value is in File
	flag map[string]string   // field path -> flag that set it ("--conns")
	// notBroadcast is the first broadcast flag given to a scenario that is
	// not a broadcast ("--rooms"), for Plan to refuse.
	notBroadcast string
}

// Phase is one stretch of the measured run with a constant shape.
type Phase struct {
	// Name labels the phase in reports. Default "phase-N", N counted from 1.
	Name string `json:"name,omitempty"`
	// Duration is how long the phase lasts. Required, > 0.
	Duration Duration `json:"duration"`
	// Conns is the number of connections open during the phase. Required, >= 1.
	Conns int `json:"conns"`
	// ConnectRate is how many new connections per second are opened while
	// ramping to Conns. Default 1000; must be > 0.
	ConnectRate *float64 `json:"connect_rate,omitempty"`
	// Rate is the total send rate in messages per second across all
	// connections (open mode). Exactly one of Rate and PerConnRate is set in
	// open mode, neither in closed mode.
	Rate *float64 `json:"rate,omitempty"`
	// PerConnRate is the send rate in messages per second of each connection
	// (open mode).
	PerConnRate *float64 `json:"per_conn_rate,omitempty"`
	// Size is the payload size in bytes, the measurement header included and
	// the framing excluded. Default 64.
	Size *int `json:"size,omitempty"`
	// InFlight is, in closed mode, how many messages each connection keeps
	// outstanding. Default 1; not valid in open mode.
	InFlight *int `json:"inflight,omitempty"`
}

// Broadcast is the rooms and roles of a room broadcast scenario against a
// server that speaks the reference room protocol. The phase's conns are the
// subscribers; publishers come on top of them. A broadcast scenario has one
// phase, in open mode, and sets its rate here, not in the phase.
type Broadcast struct {
	// Namespace is sent in every join, leave and publish. Over WebSocket
	// the namespace is the URL path; against the embedded server the path
	// is set to it. Default "/".
	Namespace string `json:"namespace,omitempty"`
	// Rooms is the number of rooms, named room-0, room-1, ... Default 1,
	// or the length of Sizes.
	Rooms *int `json:"rooms,omitempty"`
	// Distribution spreads subscribers over rooms: uniform (default: sizes
	// differ by at most one) or zipf (room k gets a share proportional to
	// 1/(k+1)^Skew: a few large rooms and many small ones).
	Distribution string `json:"distribution,omitempty"`
	// Skew is the zipf exponent. Default 1.
	Skew *float64 `json:"skew,omitempty"`
	// Sizes gives every room's subscribers explicitly; they must add up to
	// the phase's conns.
	Sizes []int `json:"sizes,omitempty"`
	// Publishers is the number of publisher connections. Default 1; not
	// with Chat.
	Publishers *int `json:"publishers,omitempty"`
	// PublishRate is publishes per second per room. Required. In chat
	// every member publishes at the same rate, PublishRate*rooms/conns, so
	// that an average room gets PublishRate.
	PublishRate *float64 `json:"publish_rate,omitempty"`
	// Chat makes every subscriber publish to its own room; there are no
	// dedicated publishers.
	Chat bool `json:"chat,omitempty"`
	// ToSelf delivers a publish to its publisher too, if it is a member
	// (Socket.IO's io.to(room)); default as socket.to(room), without.
	ToSelf bool `json:"to_self,omitempty"`
	// TopRooms is how many of the largest rooms are reported on their own;
	// the rest are reported together. Default 10.
	TopRooms *int `json:"top_rooms,omitempty"`
	// ChurnEvery, if > 0, makes each subscriber leave and rejoin its room
	// after that many deliveries: membership changes during the run.
	ChurnEvery int `json:"churn_every,omitempty"`
	// KeepAlive is how often a UDP subscriber repeats its join, so that a
	// server that forgets silent UDP members keeps it; below the server's
	// expiry. Default 10s (the reference server forgets after 30s).
	KeepAlive *Duration `json:"keepalive,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("20s",
// "1m30s") in YAML and JSON.
type Duration time.Duration

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a string such as "20s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "20s", or a number of
// nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		x, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("scenarios: bad duration %q: want a Go duration like \"20s\"", v)
		}
		*d = Duration(x)
	case float64:
		*d = Duration(v)
	default:
		return fmt.Errorf("scenarios: bad duration %s: want a string like \"20s\"", b)
	}
	return nil
}

// position is a place in a scenario file, 1-based.
type position struct{ line, col int }

// EmbeddedStream reports whether s runs against the embedded reference server
// over a stream transport (ws or tcp, the default being ws): then each
// connection costs this process two open files, the client's end and the
// server's. Callers use it to compute Limits before Plan; call it after Apply.
func (s *Spec) EmbeddedStream() bool {
	return s.Target == "" && s.Transport != plan.UDP
}
