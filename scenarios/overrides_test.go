package scenarios

import (
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
)

func TestApply(t *testing.T) {
	t.Parallel()
	s := mustParse(t, `name: t
target: ws://file.example/echo
phases:
  - duration: 10s
    conns: 10
    per_conn_rate: 5
  - duration: 20s
    conns: 20
    rate: 100
    size: 100
`)
	s.Apply(Overrides{
		Conns:       ptr(4),
		ConnectRate: ptr(50.0),
		Rate:        ptr(400.0),
		Duration:    ptr(3 * time.Second),
		Warmup:      ptr(time.Duration(0)),
		Timeout:     ptr(2 * time.Second),
		Size:        ptr(256),
		Target:      ptr("tcp://localhost:9000"),
		Insecure:    ptr(true),
	})
	p, err := s.Plan(Limits{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Target, (plan.Target{URL: "tcp://localhost:9000", Transport: plan.TCP, Insecure: true, Addr: "localhost:9000"}); got != want {
		t.Errorf("target: got %+v, want %+v", got, want)
	}
	if p.Warmup != 0 || p.Timeout != 2*time.Second || p.Framing != plan.Len32 {
		t.Errorf("got warmup %s, timeout %s, framing %q", p.Warmup, p.Timeout, p.Framing)
	}
	for i, ph := range p.Phases {
		if ph.Conns != 4 || ph.ConnectRate != 50 || ph.PerConnRate != 100 || ph.Duration != 3*time.Second || ph.Size != 256 {
			t.Errorf("phases[%d]: got %+v", i, ph)
		}
	}
	// --rate replaced the file's per_conn_rate.
	if s.Phases[0].PerConnRate != nil {
		t.Errorf("phases[0].per_conn_rate: got %v, want nil", *s.Phases[0].PerConnRate)
	}
}

func TestApplyPerConnRateClearsRate(t *testing.T) {
	t.Parallel()
	s := mustParse(t, head+"    rate: 100\n")
	s.Apply(Overrides{PerConnRate: ptr(3.0)})
	p, err := s.Plan(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Phases[0].PerConnRate, 3.0; got != want {
		t.Errorf("per-conn rate: got %v, want %v", got, want)
	}
	if got, want := p.Phases[0].Rate(), 30.0; got != want {
		t.Errorf("rate: got %v, want %v", got, want)
	}
}

func TestApplyNothing(t *testing.T) {
	t.Parallel()
	s := mustParse(t, head+"    rate: 100\n")
	s.Apply(Overrides{})
	_, err := mustParse(t, head+"    rate: -1\n").Plan(Limits{})
	if err == nil {
		t.Fatal("want an error")
	}
	if _, err := s.Plan(Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestApplyErrors(t *testing.T) {
	t.Parallel()
	twoPhases := head + "    rate: 100\n  - duration: 5s\n    conns: 5\n    rate: 50\n"
	tests := []struct {
		name, data string
		o          Overrides
		lim        int
		want       string
	}{
		{"negative rate", twoPhases, Overrides{Rate: ptr(-5.0)}, 0,
			"--rate: must be > 0 (got -5); set a positive total rate in msg/s"},
		{"zero per-conn rate", twoPhases, Overrides{PerConnRate: ptr(0.0)}, 0,
			"--per-conn-rate: must be > 0 (got 0); set a positive rate in msg/s per connection"},
		{"both rate flags", twoPhases, Overrides{Rate: ptr(5.0), PerConnRate: ptr(1.0)}, 0,
			"--per-conn-rate: set either --rate (total msg/s) or --per-conn-rate (msg/s per connection), not both"},
		{"conns over the limit", twoPhases, Overrides{Conns: ptr(30000)}, 9968,
			"--conns: 30000 connections need more open files than the limit allows (at most 9968 here); lower conns or run several processes"},
		{"conns zero", twoPhases, Overrides{Conns: ptr(0)}, 0,
			"--conns: must be >= 1 (got 0)"},
		{"duration zero", twoPhases, Overrides{Duration: ptr(time.Duration(0))}, 0,
			"--duration: must be > 0 (got 0s); set how long the phase lasts, like 20s"},
		{"warmup negative", twoPhases, Overrides{Warmup: ptr(-time.Second)}, 0,
			"--warmup: must be >= 0 (got -1s); use 0s for no warm-up"},
		{"timeout zero", twoPhases, Overrides{Timeout: ptr(time.Duration(0))}, 0,
			"--timeout: must be > 0 (got 0s); set how long to wait for a reply before counting it lost, like 1s"},
		{"connect rate negative", twoPhases, Overrides{ConnectRate: ptr(-1.0)}, 0,
			"--connect-rate: must be > 0 (got -1); set how many connections to open per second, like 1000"},
		{"size below header", twoPhases, Overrides{Size: ptr(8)}, 0,
			"--size: must be at least 32 bytes to hold the measurement header (got 8)"},
		{"bad target scheme", twoPhases, Overrides{Target: ptr("http://localhost")}, 0,
			`--target: unknown scheme "http" in "http://localhost"; want ws://, wss://, tcp:// or udp://`},
		{"target against transport", "transport: tcp\nframing: len32\n" + twoPhases, Overrides{Target: ptr("ws://localhost:8080")}, 0,
			"--target: scheme ws:// does not match transport: tcp in the scenario; give a tcp:// URL or pick a ws scenario"},
		{"rate in closed mode", "mode: closed\n" + head, Overrides{Rate: ptr(100.0)}, 0,
			"--rate: closed mode sends when replies arrive and takes no rate; drop --rate or set mode: open"},
		// A flag fixes one value; the file's other problems keep their position.
		{"file error remains", head + "    rate: 100\n    size: 8\n", Overrides{Conns: ptr(3)}, 0,
			"t.yaml:6:11: phases[0].size: must be at least 32 bytes to hold the measurement header (got 8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.data)
			s.Apply(tt.o)
			_, err := s.Plan(Limits{MaxConns: tt.lim})
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// A flag fixes a bad value from the file.
func TestApplyFixesFile(t *testing.T) {
	t.Parallel()
	s := mustParse(t, head+"    rate: -5\n")
	s.Apply(Overrides{Rate: ptr(50.0)})
	if _, err := s.Plan(Limits{}); err != nil {
		t.Fatal(err)
	}
}
