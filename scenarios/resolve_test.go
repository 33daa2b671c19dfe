package scenarios

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
)

func mustParse(t *testing.T, data string) *Spec {
	t.Helper()
	s, err := Parse("t.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPlanDefaults(t *testing.T) {
	t.Parallel()
	p, err := mustParse(t, head+"    rate: 100\n").Plan(Limits{MaxConns: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := &plan.Plan{
		Name:           "t",
		Target:         plan.Target{Embedded: true, Transport: plan.WS},
		Mode:           plan.Open,
		Warmup:         2 * time.Second,
		Timeout:        time.Second,
		ConnectTimeout: 5 * time.Second,
		Phases: []plan.Phase{{
			Name: "phase-1", Duration: 10 * time.Second, Conns: 10, ConnectRate: 1000, PerConnRate: 10, Size: 64,
		}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
}

func TestPlanGood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		check      func(t *testing.T, p *plan.Plan)
	}{
		{"tcp embedded defaults to len32", "transport: tcp\n", func(t *testing.T, p *plan.Plan) {
			if p.Target.Transport != plan.TCP || p.Framing != plan.Len32 || !p.Target.Embedded {
				t.Errorf("got %+v framing %q", p.Target, p.Framing)
			}
		}},
		{"tcp line framing, 64-byte header fits", "transport: tcp\nframing: line\n", func(t *testing.T, p *plan.Plan) {
			if p.Framing != plan.Line {
				t.Errorf("framing: got %q", p.Framing)
			}
		}},
		{"udp embedded", "transport: udp\n", func(t *testing.T, p *plan.Plan) {
			if p.Target.Transport != plan.UDP || p.Framing != "" {
				t.Errorf("got %+v framing %q", p.Target, p.Framing)
			}
		}},
		{"ws default port", "target: ws://localhost/echo\n", func(t *testing.T, p *plan.Plan) {
			want := plan.Target{URL: "ws://localhost/echo", Transport: plan.WS, Addr: "localhost:80"}
			if p.Target != want {
				t.Errorf("got %+v, want %+v", p.Target, want)
			}
		}},
		{"wss default port", "target: wss://example.com\ninsecure: true\n", func(t *testing.T, p *plan.Plan) {
			want := plan.Target{URL: "wss://example.com", Transport: plan.WS, TLS: true, Insecure: true, Addr: "example.com:443"}
			if p.Target != want {
				t.Errorf("got %+v, want %+v", p.Target, want)
			}
		}},
		{"ws ipv6", "target: ws://[::1]:9000/x?room=a\ntransport: ws\n", func(t *testing.T, p *plan.Plan) {
			if p.Target.Addr != "[::1]:9000" || p.Target.Transport != plan.WS {
				t.Errorf("got %+v", p.Target)
			}
		}},
		{"scheme in capitals", "target: WS://localhost:8080\n", func(t *testing.T, p *plan.Plan) {
			if p.Target.Addr != "localhost:8080" || p.Target.Transport != plan.WS {
				t.Errorf("got %+v", p.Target)
			}
		}},
		{"tcp target", "target: tcp://127.0.0.1:9000\ntransport: tcp\nframing: raw\n", func(t *testing.T, p *plan.Plan) {
			want := plan.Target{URL: "tcp://127.0.0.1:9000", Transport: plan.TCP, Addr: "127.0.0.1:9000"}
			if p.Target != want || p.Framing != plan.Raw {
				t.Errorf("got %+v framing %q, want %+v raw", p.Target, p.Framing, want)
			}
		}},
		{"udp target", "target: udp://localhost:5353\n", func(t *testing.T, p *plan.Plan) {
			if p.Target.Transport != plan.UDP || p.Target.Addr != "localhost:5353" || p.Framing != "" {
				t.Errorf("got %+v framing %q", p.Target, p.Framing)
			}
		}},
		{"explicit values", "mode: open\nwarmup: 0s\ntimeout: 250ms\nconnect_timeout: 2s\n", func(t *testing.T, p *plan.Plan) {
			if p.Warmup != 0 || p.Timeout != 250*time.Millisecond || p.ConnectTimeout != 2*time.Second {
				t.Errorf("got %+v", p)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := mustParse(t, tt.data+head+"    rate: 100\n").Plan(Limits{})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestPlanPhases(t *testing.T) {
	t.Parallel()
	data := `name: t
mode: closed
phases:
  - duration: 5s
    conns: 1
  - name: wide
    duration: 10s
    conns: 100
    inflight: 4
    connect_rate: 50
    size: 1048576
`
	p, err := mustParse(t, data).Plan(Limits{MaxConns: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Phase{
		{Name: "phase-1", Duration: 5 * time.Second, Conns: 1, ConnectRate: 1000, Size: 64, InFlight: 1},
		{Name: "wide", Duration: 10 * time.Second, Conns: 100, ConnectRate: 50, Size: 1 << 20, InFlight: 4},
	}
	if !reflect.DeepEqual(p.Phases, want) {
		t.Errorf("got  %+v\nwant %+v", p.Phases, want)
	}
	if p.Mode != plan.Closed || p.MaxConns() != 100 || p.MeasuredDuration() != 15*time.Second {
		t.Errorf("got mode %q, max conns %d, measured %s", p.Mode, p.MaxConns(), p.MeasuredDuration())
	}
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	// Each case is a scenario that parses; top is put before "name: t" so
	// that its keys start at line 1, phase after the first phase's keys, at
	// line 5.
	tests := []struct {
		name, top, phase string
		lim              int
		want             string
	}{
		{"negative rate", "", "    rate: -5\n", 0,
			`t.yaml:5:11: phases[0].rate: must be > 0 (got -5); set a positive total rate in msg/s`},
		{"zero rate", "", "    rate: 0\n", 0,
			`t.yaml:5:11: phases[0].rate: must be > 0 (got 0); set a positive total rate in msg/s`},
		{"negative per-conn rate", "", "    per_conn_rate: -0.5\n", 0,
			`t.yaml:5:20: phases[0].per_conn_rate: must be > 0 (got -0.5); set a positive rate in msg/s per connection`},
		{"both rates", "", "    rate: 10\n    per_conn_rate: 1\n", 0,
			`t.yaml:6:20: phases[0].per_conn_rate: set either rate (total msg/s) or per_conn_rate (msg/s per connection), not both`},
		{"no rate in open mode", "", "", 0,
			`t.yaml:3:5: phases[0]: open mode needs a send rate; set rate (total msg/s) or per_conn_rate (msg/s per connection)`},
		{"rate in closed mode", "mode: closed\n", "    rate: 100\n", 0,
			`t.yaml:6:11: phases[0].rate: closed mode sends when replies arrive and takes no rate; drop rate or set mode: open`},
		{"inflight in open mode", "", "    rate: 100\n    inflight: 2\n", 0,
			`t.yaml:6:15: phases[0].inflight: only applies to closed mode; drop inflight or set mode: closed`},
		{"zero inflight", "mode: closed\n", "    inflight: 0\n", 0,
			`t.yaml:6:15: phases[0].inflight: must be >= 1 (got 0); set how many messages each connection keeps outstanding`},
		{"zero connect rate", "", "    rate: 100\n    connect_rate: 0\n", 0,
			`t.yaml:6:19: phases[0].connect_rate: must be > 0 (got 0); set how many connections to open per second, like 1000`},
		{"size below header", "", "    rate: 100\n    size: 16\n", 0,
			`t.yaml:6:11: phases[0].size: must be at least 32 bytes to hold the measurement header (got 16)`},
		{"size below line header", "transport: tcp\nframing: line\n", "    rate: 100\n    size: 40\n", 0,
			`t.yaml:8:11: phases[0].size: must be at least 64 bytes with TCP line framing, whose measurement header is 64 hex characters (got 40)`},
		{"size above 1 MiB", "", "    rate: 100\n    size: 2000000\n", 0,
			`t.yaml:6:11: phases[0].size: must be at most 1048576 bytes (1 MiB) (got 2000000)`},
		{"size above a datagram", "transport: udp\n", "    rate: 100\n    size: 65508\n", 0,
			`t.yaml:7:11: phases[0].size: must be at most 65507 bytes over UDP, the largest datagram payload (got 65508)`},
		{"conns over the limit", "", "    rate: 100\n", 9,
			`t.yaml:4:12: phases[0].conns: 10 connections need more open files than the limit allows (at most 9 here); lower conns or run several processes`},
		{"timeout zero", "timeout: 0s\n", "    rate: 100\n", 0,
			`t.yaml:1:10: timeout: must be > 0 (got 0s); set how long to wait for a reply before counting it lost, like 1s`},
		{"connect timeout negative", "connect_timeout: -1s\n", "    rate: 100\n", 0,
			`t.yaml:1:18: connect_timeout: must be > 0 (got -1s); set how long connecting may take, like 5s`},
		{"warmup negative", "warmup: -2s\n", "    rate: 100\n", 0,
			`t.yaml:1:9: warmup: must be >= 0 (got -2s); use 0s for no warm-up`},
		{"unknown transport", "transport: websocket\n", "    rate: 100\n", 0,
			`t.yaml:1:12: transport: unknown transport "websocket"; want ws, tcp or udp`},
		{"unknown framing", "transport: tcp\nframing: crlf\n", "    rate: 100\n", 0,
			`t.yaml:2:10: framing: unknown framing "crlf"; want len32, line or raw`},
		{"framing with ws", "framing: len32\n", "    rate: 100\n", 0,
			`t.yaml:1:10: framing: only applies to the tcp transport, and this scenario runs over ws; drop framing`},
		{"framing with udp url", "target: udp://h:1\nframing: raw\n", "    rate: 100\n", 0,
			`t.yaml:2:10: framing: only applies to the tcp transport, and this scenario runs over udp; drop framing`},
		{"unknown mode", "mode: closed-loop\n", "", 0,
			`t.yaml:1:7: mode: unknown mode "closed-loop"; want open (send on a fixed schedule) or closed (send when a reply arrives)`},
		{"bad scheme", "target: http://localhost:8080\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: unknown scheme "http" in "http://localhost:8080"; want ws://, wss://, tcp:// or udp://`},
		{"no scheme", "target: localhost:9000\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: "localhost:9000" has no scheme; want ws://, wss://, tcp:// or udp://, like tcp://localhost:9000`},
		{"tcp without port", "target: tcp://localhost\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: "tcp://localhost" needs host:port, like tcp://localhost:9000`},
		{"udp with path", "target: udp://localhost:53/x\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: "udp://localhost:53/x": a udp:// target is host:port only, without path or query`},
		{"ws without host", "target: ws:///echo\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: "ws:///echo" has no host; want ws://host[:port][/path]`},
		{"bad port", "target: tcp://localhost:70000\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: bad port "70000" in "tcp://localhost:70000"; want 1 to 65535`},
		{"non-numeric port", "target: ws://localhost:http/\n", "    rate: 100\n", 0,
			`t.yaml:1:9: target: bad URL "ws://localhost:http/": invalid port ":http" after host`},
		{"transport conflicts with url", "target: ws://localhost:8080\ntransport: tcp\n", "    rate: 100\n", 0,
			`t.yaml:2:12: transport: "tcp" conflicts with the target's scheme ws://; drop transport (a target URL sets the transport)`},
		{"duplicate phase names", "", "    rate: 100\n    name: a\n  - name: a\n    duration: 1s\n    conns: 1\n    rate: 1\n", 0,
			`t.yaml:7:11: phases[1].name: "a" is already the name of phases[0]; give each phase its own name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.top+head+tt.phase)
			p, err := s.Plan(Limits{MaxConns: tt.lim})
			if err == nil {
				t.Fatalf("got %+v, want error %q", p, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("got %T, want *Error", err)
			}
		})
	}
}

func TestPlanErrorsWholeFile(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, data, want string }{
		{"zero duration", "name: t\nphases:\n  - duration: 0s\n    conns: 10\n    rate: 100\n",
			`t.yaml:3:15: phases[0].duration: must be > 0 (got 0s); set how long the phase lasts, like 20s`},
		{"zero conns", "name: t\nphases:\n  - duration: 1s\n    conns: 0\n    rate: 100\n",
			`t.yaml:4:12: phases[0].conns: must be >= 1 (got 0)`},
		{"empty name", "name: \"\"\nphases:\n  - duration: 1s\n    conns: 1\n    rate: 100\n",
			`t.yaml:1:7: name: must not be empty; name the scenario`},
		{"several problems", "name: t\nphases:\n  - duration: -1s\n    conns: 10\n    rate: -5\n",
			"t.yaml:3:15: phases[0].duration: must be > 0 (got -1s); set how long the phase lasts, like 20s\n" +
				"t.yaml:5:11: phases[0].rate: must be > 0 (got -5); set a positive total rate in msg/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := mustParse(t, tt.data).Plan(Limits{})
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("got %T, want *Error", err)
			}
		})
	}
}

// A Spec built in code, without positions, still gets its problems named.
func TestPlanErrorsWithoutFile(t *testing.T) {
	t.Parallel()
	s := &Spec{Name: "code", Phases: []Phase{{Duration: Duration(time.Second), Conns: 1, Rate: ptr(-1.0)}}}
	_, err := s.Plan(Limits{})
	if got, want := err.Error(), "phases[0].rate: must be > 0 (got -1); set a positive total rate in msg/s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = (&Spec{Name: "empty"}).Plan(Limits{})
	if got, want := err.Error(), "phases: at least one phase is required, with duration and conns"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
