package scenarios_test

// End-to-end tests of scenarios.Run against the embedded reference server on
// loopback: interrupted runs, runs with several phases, closed loop, and an
// unreachable target. Every run is a second or two.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/scenarios"
)

// load parses a scenario and resolves its plan.
func load(t *testing.T, yaml string) (*scenarios.Spec, *plan.Plan) {
	t.Helper()
	spec, err := scenarios.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := spec.Plan(scenarios.Limits{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return spec, p
}

// checkCounts checks the accounting identities of any result.
func checkCounts(t *testing.T, r *result.Result) {
	t.Helper()
	c := r.Counters
	if got, want := c.Sent, c.Received+c.Lost+c.InFlight; got != want {
		t.Errorf("sent %d != received %d + lost %d + in_flight %d = %d", c.Sent, c.Received, c.Lost, c.InFlight, want)
	}
	if got, want := c.ConnsOpened, c.ConnsDropped+c.ConnsClosed; got != want {
		t.Errorf("conns_opened %d != dropped %d + closed %d", got, c.ConnsDropped, c.ConnsClosed)
	}
	if h := r.Histograms[result.Latency]; h == nil || h.Count != c.Received {
		t.Errorf("latency histogram %+v, want %d samples", h, c.Received)
	}
	var ivSent, ivRecv int64
	for _, iv := range r.Intervals {
		ivSent += iv.Sent
		ivRecv += iv.Received
	}
	if ivSent != c.Sent+c.WarmupSent || ivRecv != c.Received+c.WarmupReceived {
		t.Errorf("interval sums sent %d received %d, want %d and %d (measured + warm-up)",
			ivSent, ivRecv, c.Sent+c.WarmupSent, c.Received+c.WarmupReceived)
	}
	// The result survives its own JSON round trip, histograms included.
	path := t.TempDir() + "/r.json"
	if err := result.WriteFile(path, r); err != nil {
		t.Fatal(err)
	}
	back, err := result.Read(path)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if back.Counters.Sent != c.Sent || back.Interrupted != r.Interrupted {
		t.Errorf("round trip changed the result: sent %d -> %d, interrupted %v -> %v", c.Sent, back.Counters.Sent, r.Interrupted, back.Interrupted)
	}
}

// TestRunInterrupted cancels a 10 s run partway and checks that Run returns
// promptly with a partial result marked interrupted whose counts add up.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		transport string
		warmup    string
		cancelIn  string // cancel at the first progress interval of this phase
		measured  bool   // messages were measured before the cancel
	}{
		{"ws measured", "ws", "200ms", "steady", true},
		{"udp measured", "udp", "200ms", "steady", true},
		{"tcp during warm-up", "tcp", "5s", "warmup", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec, p := load(t, `name: interrupt
transport: `+tc.transport+`
warmup: `+tc.warmup+`
timeout: 300ms
phases:
  - name: steady
    duration: 10s
    conns: 10
    rate: 200
`)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			var cancelledAt time.Time
			var phases []string
			opts := scenarios.RunOptions{
				Version: "test",
				Interval: func(iv result.Interval, _ *plan.Plan) {
					mu.Lock()
					defer mu.Unlock()
					phases = append(phases, iv.Phase)
					// Cancel at the second interval of the phase (about 1.5-2 s
					// in), so that a whole interval is measured first.
					n := 0
					for _, ph := range phases {
						if ph == tc.cancelIn {
							n++
						}
					}
					if n == 2 && cancelledAt.IsZero() {
						cancelledAt = time.Now()
						cancel()
					}
				},
			}
			start := time.Now()
			r, err := scenarios.Run(ctx, spec, p, opts)
			returned := time.Now()
			if err != nil {
				t.Fatalf("Run: %v, want a partial result and no error", err)
			}
			mu.Lock()
			at := cancelledAt
			mu.Unlock()
			if at.IsZero() {
				t.Fatalf("Run returned after %s without being cancelled (intervals %v)", returned.Sub(start), phases)
			}
			if d := returned.Sub(at); d > 2*time.Second {
				t.Errorf("Run took %s to return after the cancel", d)
			}
			if !r.Interrupted {
				t.Errorf("Interrupted false after a cancel")
			}
			checkCounts(t, r)
			c := r.Counters
			if tc.measured && (c.Sent == 0 || c.Received == 0) {
				t.Errorf("sent %d received %d: want the measured messages before the cancel", c.Sent, c.Received)
			}
			if !tc.measured && (c.Sent != 0 || c.WarmupSent == 0) {
				t.Errorf("sent %d warmup_sent %d: a cancel in the warm-up measures nothing", c.Sent, c.WarmupSent)
			}
			if c.Lost != 0 || len(c.Errors) != 0 || c.ConnsDropped != 0 {
				t.Errorf("lost %d, errors %v, dropped %d: an interrupt is not the target's fault", c.Lost, c.Errors, c.ConnsDropped)
			}
			w := r.Window
			if w.StartNs > w.EndNs || w.EndNs > w.DrainEndNs {
				t.Errorf("window out of order: %+v", w)
			}
			if secs := w.Seconds(); secs > 5 {
				t.Errorf("measured window %.2fs: want it to end at the cancel", secs)
			}
			if tc.measured {
				if len(r.Phases) != 1 || r.Phases[0].EndNs > w.EndNs {
					t.Errorf("phases %+v: want the one phase, ended by the cancel at %d", r.Phases, w.EndNs)
				}
			}
		})
	}
}

// TestRunPhases runs three phases that scale connections up and down and
// change the rate; every message is still accounted for.
func TestRunPhases(t *testing.T) {
	t.Parallel()
	spec, p := load(t, `name: phases
transport: tcp
warmup: 200ms
timeout: 300ms
phases:
  - name: up
    duration: 700ms
    conns: 4
    rate: 160
  - name: more
    duration: 700ms
    conns: 8
    connect_rate: 100
    rate: 400
  - name: down
    duration: 700ms
    conns: 2
    per_conn_rate: 50
    size: 200
`)
	var mu sync.Mutex
	seen := map[string]bool{}
	r, err := scenarios.Run(context.Background(), spec, p, scenarios.RunOptions{
		Interval: func(iv result.Interval, _ *plan.Plan) {
			mu.Lock()
			seen[iv.Phase] = true
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, r)
	c := r.Counters
	if r.Interrupted || c.Lost != 0 || c.InFlight != 0 || len(c.Errors) != 0 {
		t.Errorf("interrupted %v, lost %d, in_flight %d, errors %v; want a clean run", r.Interrupted, c.Lost, c.InFlight, c.Errors)
	}
	if c.ConnsOpened != 8 || c.ConnsClosed != 8 || c.ConnsDropped != 0 || c.ConnsFailed != 0 {
		t.Errorf("conns opened %d closed %d dropped %d failed %d; want 8 8 0 0", c.ConnsOpened, c.ConnsClosed, c.ConnsDropped, c.ConnsFailed)
	}
	if len(r.Phases) != 3 {
		t.Fatalf("phases %+v, want 3", r.Phases)
	}
	for i, want := range []struct {
		name  string
		conns int
		rate  float64
		size  int
	}{{"up", 4, 160, 64}, {"more", 8, 400, 64}, {"down", 2, 100, 200}} {
		ph := r.Phases[i]
		if ph.Name != want.name || ph.Conns != want.conns || ph.PlannedRate != want.rate || ph.Size != want.size {
			t.Errorf("phase %d = %+v, want %s with %d conns, %.0f msg/s, %d B", i, ph, want.name, want.conns, want.rate, want.size)
		}
		if ph.EndNs <= ph.StartNs || (i > 0 && ph.StartNs != r.Phases[i-1].EndNs) {
			t.Errorf("phase %d spans %d..%d, after %+v", i, ph.StartNs, ph.EndNs, r.Phases[max(i-1, 0)])
		}
	}
	// Planned sends: 160*0.7 + at most 400*0.7 + 100*0.7; the ramp inside
	// "more" opens connections at 100/s, so its first part sends less.
	if lo, hi := int64(112+70), int64(112+280+70+10); c.Sent < lo || c.Sent > hi {
		t.Errorf("sent %d, want between %d and %d", c.Sent, lo, hi)
	}
	// Intervals are a second long and labelled with the phase running when
	// they close, so a phase shorter than a second may have none of its own.
	if len(seen) == 0 {
		t.Errorf("no intervals reported")
	}
	for name := range seen {
		switch name {
		case "warmup", "up", "more", "down", "drain":
		default:
			t.Errorf("interval labelled %q, not a phase of the run", name)
		}
	}
}

// TestRunClosedLoop runs the ping built-in shortened: closed loop, one
// message in flight, so latency equals service time.
func TestRunClosedLoop(t *testing.T) {
	t.Parallel()
	spec, ok := scenarios.Builtin("ping")
	if !ok {
		t.Fatal("no built-in ping")
	}
	d, w, to := time.Second, 200*time.Millisecond, 300*time.Millisecond
	spec.Apply(scenarios.Overrides{Duration: &d, Warmup: &w, Timeout: &to})
	p, err := spec.Plan(scenarios.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := scenarios.Run(context.Background(), spec, p, scenarios.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, r)
	c := r.Counters
	if r.Plan.Mode != "closed" || c.Sent == 0 || c.Lost != 0 || len(c.Errors) != 0 {
		t.Errorf("mode %s, sent %d, lost %d, errors %v; want closed, round trips, none lost", r.Plan.Mode, c.Sent, c.Lost, c.Errors)
	}
	// A closed loop is never idle: one message is out at every moment, so
	// the round trips' service times fill the window, however slow the
	// machine makes each one. (Between a reply and the next send only the
	// harness runs.)
	svc := r.Histograms[result.ServiceTime]
	t.Logf("%d round trips, service time mean %.0f ns", svc.Count, svc.Mean)
	if busy := float64(svc.Count) * svc.Mean / 1e9; busy < 0.5*r.Window.Seconds() || busy > r.Window.Seconds()+float64(r.Plan.TimeoutNs)/1e9 {
		t.Errorf("%d round trips of %.0f ns on average fill %.3fs of the %.3fs window; want most of it", svc.Count, svc.Mean, busy, r.Window.Seconds())
	}
	// One in flight: at most the last message is awaited at the end.
	if c.InFlight > 1 {
		t.Errorf("in_flight %d with one message in flight per connection", c.InFlight)
	}
}

// TestRunUnreachable: a target that refuses connections is a *RunError
// naming it, returned without running the scenario.
func TestRunUnreachable(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"tcp://127.0.0.1:1", "ws://127.0.0.1:1/"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			spec, p := load(t, `name: unreachable
target: `+target+`
connect_timeout: 2s
phases:
  - duration: 10s
    conns: 5
    rate: 100
`)
			start := time.Now()
			r, err := scenarios.Run(context.Background(), spec, p, scenarios.RunOptions{})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s, want under the 2s connect timeout", d)
			}
			var re *scenarios.RunError
			if !errors.As(err, &re) {
				t.Fatalf("Run = %v, %v; want a *RunError", r, err)
			}
			if !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "refused") {
				t.Errorf("error %q does not name the target and the reason", err)
			}
		})
	}
}

// TestRunSlowProgressDoesNotShiftPhases: a progress callback that blocks (a
// slow or full stderr pipe) must not change what is sent. Phase "fast" sends
// 200 msg/s for 1 s, phase "slow" 20 msg/s for 600 ms: about 210 messages in
// all. The callback sleeps on purpose (fault injection, not synchronisation):
// the first interval (~1.0 s) blocks it across the phase boundary (~1.3 s).
//
// The runner calls the callback without holding its lock, and Drive
// publishes every phase's pacing before the window opens, so a late driver
// cannot let the old rate run on.
func TestRunSlowProgressDoesNotShiftPhases(t *testing.T) {
	t.Parallel()
	spec, p := load(t, `name: slow-progress
transport: tcp
warmup: 300ms
timeout: 300ms
phases:
  - name: fast
    duration: 1s
    conns: 5
    rate: 200
  - name: slow
    duration: 600ms
    conns: 5
    rate: 20
`)
	var once sync.Once
	r, err := scenarios.Run(context.Background(), spec, p, scenarios.RunOptions{
		Interval: func(iv result.Interval, _ *plan.Plan) {
			once.Do(func() { time.Sleep(600 * time.Millisecond) })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, r)
	// fast: exactly 200; slow: 4 msg/s per connection for 0.6 s, 2 or 3 slots
	// per connection.
	if c := r.Counters; c.Sent < 200+10 || c.Sent > 200+15 {
		t.Errorf("sent %d, want 210 to 215: a blocked progress callback delayed the phase change and the old rate ran on", c.Sent)
	}
}
