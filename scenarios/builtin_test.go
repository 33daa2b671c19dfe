package scenarios

import (
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
)

func TestBuiltins(t *testing.T) {
	t.Parallel()
	specs := Builtins()
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, " "), "broadcast broadcast-skewed chat echo echo-tcp echo-udp idle ping ping-tcp ping-udp throughput"; got != want {
		t.Fatalf("built-ins: got %q, want %q", got, want)
	}
	for _, s := range specs {
		if got, want := s.File, "builtin:"+s.Name; got != want {
			t.Errorf("%s: file %q, want %q (the file name must be the scenario name)", s.Name, got, want)
		}
		if s.Description == "" {
			t.Errorf("%s: no description", s.Name)
		}
		if len(s.Thresholds) == 0 {
			t.Errorf("%s: no thresholds", s.Name)
		}
		if _, err := s.Plan(Limits{MaxConns: 19900}); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
		b, ok := Builtin(s.Name)
		if !ok || b.Name != s.Name {
			t.Errorf("Builtin(%q): got %v, %v", s.Name, b, ok)
		}
	}
	files, _ := fs.Glob(builtinFS, "builtin/*")
	if len(files) != len(specs) {
		t.Errorf("builtin/ holds %d files, %d are scenarios: only .yaml files are embedded", len(files), len(specs))
	}
}

// Every built-in gates on what it measures: an echo on its loss (none over
// WebSocket and TCP, under 1% over UDP), a broadcast on its delivery ratio
// (every delivery owed). A server that loses messages must fail them.
func TestBuiltinGates(t *testing.T) {
	t.Parallel()
	for _, s := range Builtins() {
		t.Run(s.Name, func(t *testing.T) {
			want := "loss <= 0%"
			switch {
			case s.Broadcast != nil:
				want = "delivery >= 100%"
			case s.Transport == "udp":
				want = "loss < 1%"
			}
			var got []string
			for _, th := range s.Thresholds {
				got = append(got, th.Expr)
			}
			if !strings.Contains(strings.Join(got, "; "), want) {
				t.Errorf("thresholds %q: want %q among them", got, want)
			}
		})
	}
}

func TestBuiltinPlans(t *testing.T) {
	t.Parallel()
	steady := plan.Phase{Name: "steady", Duration: 20 * time.Second, Conns: 1000, ConnectRate: 2000, PerConnRate: 10, Size: 64}
	ping := plan.Phase{Name: "ping", Duration: 10 * time.Second, Conns: 1, ConnectRate: 1000, Size: 64, InFlight: 1}
	tests := []struct {
		name      string
		transport plan.Transport
		framing   plan.Framing
		mode      plan.Mode
		warmup    time.Duration
		timeout   time.Duration
		phase     plan.Phase
	}{
		{"echo", plan.WS, "", plan.Open, 3 * time.Second, time.Second, steady},
		{"echo-tcp", plan.TCP, plan.Len32, plan.Open, 3 * time.Second, time.Second, steady},
		{"echo-udp", plan.UDP, "", plan.Open, 3 * time.Second, time.Second, steady},
		{"idle", plan.WS, "", plan.Open, time.Second, 2 * time.Second,
			plan.Phase{Name: "hold", Duration: 30 * time.Second, Conns: 5000, ConnectRate: 5000, PerConnRate: 0.1, Size: 64}},
		{"ping", plan.WS, "", plan.Closed, 2 * time.Second, time.Second, ping},
		{"ping-tcp", plan.TCP, plan.Len32, plan.Closed, 2 * time.Second, time.Second, ping},
		{"ping-udp", plan.UDP, "", plan.Closed, 2 * time.Second, time.Second, ping},
		{"throughput", plan.WS, "", plan.Closed, 2 * time.Second, time.Second,
			plan.Phase{Name: "flood", Duration: 10 * time.Second, Conns: 100, ConnectRate: 1000, Size: 64, InFlight: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ok := Builtin(tt.name)
			if !ok {
				t.Fatalf("no built-in %q", tt.name)
			}
			p, err := s.Plan(Limits{MaxConns: 19900})
			if err != nil {
				t.Fatal(err)
			}
			if !p.Target.Embedded || p.Target.Transport != tt.transport || p.Framing != tt.framing || p.Mode != tt.mode ||
				p.Warmup != tt.warmup || p.Timeout != tt.timeout || len(p.Phases) != 1 || p.Phases[0] != tt.phase {
				t.Errorf("got %+v", p)
			}
			if tt.phase == steady && p.Phases[0].Rate() != 10000 {
				t.Errorf("rate: got %v msg/s, want 10000", p.Phases[0].Rate())
			}
		})
	}
}

func TestBuiltinMissing(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "nope", "../builtin/echo", "builtin/echo", "echo.yaml", "."} {
		if s, ok := Builtin(name); ok {
			t.Errorf("Builtin(%q): got %v, want none", name, s.Name)
		}
	}
}

// Each call returns a fresh copy: overriding one does not change the next.
func TestBuiltinFresh(t *testing.T) {
	t.Parallel()
	a, _ := Builtin("echo")
	a.Apply(Overrides{Conns: ptr(5)})
	b, _ := Builtin("echo")
	if got, want := b.Phases[0].Conns, 1000; got != want {
		t.Errorf("conns: got %d, want %d", got, want)
	}
}

// A built-in's errors point into it by name.
func TestBuiltinErrorPosition(t *testing.T) {
	t.Parallel()
	s, _ := Builtin("echo")
	_, err := s.Plan(Limits{MaxConns: 999})
	if err == nil || !strings.HasPrefix(err.Error(), "builtin:echo:") || !strings.Contains(err.Error(), "phases[0].conns: 1000 connections") {
		t.Errorf("got %v", err)
	}
}
