package scenarios

import (
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
)

func TestFinalOnFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr  string
		final bool
	}{
		{"max < 10ms", true},
		{"latency.max <= 10ms", true},
		{"connect.max < 1s", true},
		{"send_lag.max < 5ms", true},
		{"service_time.min > 1us", true},
		{"min >= 1us", true},
		{"fanout.max < 50ms", true},
		{"max > 10ms", false}, // a later sample may still exceed it
		{"min < 1ms", false},  // a later sample may still be under it
		{"p99 < 10ms", false},
		{"p100 < 10ms", false}, // the same value as max, but judged as a percentile
		{"mean < 10ms", false},
		{"error_rate < 1%", false},
		{"loss < 1%", false},
		{"loss <= 0%", true}, // the lost count only grows: once one is lost, it fails for good
		{"error_rate <= 0", true},
		{"loss < 0.0001%", false},
		{"throughput > 100", false},
		{"rate_ratio >= 0.98", false},
		{"delivery >= 99.9%", false},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := th.FinalOnFailure(); got != tc.final {
			t.Errorf("%s: FinalOnFailure %v, want %v", tc.expr, got, tc.final)
		}
	}
}

// earlyAbort on checkResult's data (latencies 1..10 ms, 0.2% errors):
// final failures stop at any time, others only after the delay; passing and
// unmeasurable thresholds never.
func TestEarlyAbort(t *testing.T) {
	t.Parallel()
	r := checkResult(t)
	const delay = 5 * time.Second
	for _, tc := range []struct {
		name   string
		exprs  []string
		window time.Duration // of the measured window so far; 0: not begun
		want   string        // the threshold that aborts; "" for none
		final  bool
	}{
		{"final fails at once", []string{"p99 < 1s", "max < 5ms"}, time.Second, "max < 5ms", true},
		{"final fails before the window", []string{"max < 5ms"}, 0, "max < 5ms", true},
		{"min fails at once", []string{"min > 2ms"}, time.Second, "min > 2ms", true},
		{"percentile waits for the delay", []string{"p50 < 1ms"}, time.Second, "", false},
		{"percentile after the delay", []string{"p50 < 1ms"}, delay, "p50 < 1ms", false},
		{"ratio after the delay", []string{"error_rate < 0.1%"}, 6 * time.Second, "error_rate < 0.1%", false},
		{"a final failure first", []string{"p50 < 1ms", "max < 5ms"}, delay, "max < 5ms", true},
		{"first failing in order", []string{"p50 < 1ms", "p90 < 1ms"}, delay, "p50 < 1ms", false},
		{"passing", []string{"max < 1s", "p99 < 1s", "error_rate < 1%"}, 6 * time.Second, "", false},
		{"not measurable", []string{"connect.max < 1ns"}, 6 * time.Second, "", false},
		{"max > X is not final", []string{"max > 1s"}, time.Second, "", false},
	} {
		var ths []Threshold
		for _, e := range tc.exprs {
			th, err := ParseThreshold(e)
			if err != nil {
				t.Fatal(err)
			}
			ths = append(ths, th)
		}
		a := earlyAbort(ths, r, int64(tc.window)+1e9, int64(tc.window), delay)
		switch {
		case tc.want == "" && a != nil:
			t.Errorf("%s: aborted by %q, want no abort", tc.name, a.Expr)
		case tc.want == "":
		case a == nil:
			t.Errorf("%s: no abort, want one by %q", tc.name, tc.want)
		case a.Expr != tc.want || a.Final != tc.final || a.Reason == "" || a.WindowNs != int64(tc.window):
			t.Errorf("%s: aborted %+v, want by %q, final %v, at %s", tc.name, a, tc.want, tc.final, tc.window)
		}
	}
}

// snapshot turns a run's data so far into what Check needs: the window up
// to now and the phases begun, cut at now.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	th, _ := ParseThreshold("throughput > 0")
	r := snapshot(result.Counters{Sent: 300, Received: 300}, nil, abortPlan(), 1e9, 4e9)
	if got := r.Window.Seconds(); got != 3 {
		t.Errorf("window %vs, want 3", got)
	}
	if got := len(r.Phases); got != 2 {
		t.Fatalf("%d phases, want the 2 begun", got)
	}
	if got, want := r.Phases[1].EndNs, int64(4e9); got != want {
		t.Errorf("second phase ends %d, want %d (now)", got, want)
	}
	if got := th.Check(r).Measured; got != 100 {
		t.Errorf("throughput %v, want 100 msg/s", got)
	}
	if got := snapshot(result.Counters{}, nil, abortPlan(), 0, 4e9).Window.Seconds(); got != 0 {
		t.Errorf("before the window: %vs, want 0", got)
	}
}

// abortPlan is an open-loop plan of three 2 s phases.
func abortPlan() *plan.Plan {
	ph := plan.Phase{Duration: 2 * time.Second, Conns: 10, PerConnRate: 10}
	return &plan.Plan{Mode: plan.Open, Phases: []plan.Phase{ph, ph, ph}}
}
