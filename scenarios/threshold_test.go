package scenarios

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sockbench/sockbench/internal/result"
)

func TestParseThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr                   string
		metric, stat, op, unit string
		value                  float64
	}{
		{"p99 < 50ms", "latency", "p99", "<", "ns", 50e6},
		{"p99<20ms", "latency", "p99", "<", "ns", 20e6},
		{"latency.p99 < 20ms", "latency", "p99", "<", "ns", 20e6},
		{"  p99.9 <= 1.5s ", "latency", "p99.9", "<=", "ns", 1.5e9},
		{"p99.99 < 100us", "latency", "p99.99", "<", "ns", 100e3},
		{"P99.90 < 100µs", "latency", "p99.9", "<", "ns", 100e3},
		{"p50 < 250 ns", "latency", "p50", "<", "ns", 250},
		{"service_time.p90 < 5ms", "service_time", "p90", "<", "ns", 5e6},
		{"connect.max < 1s", "connect", "max", "<", "ns", 1e9},
		{"send_lag.mean < 1ms", "send_lag", "mean", "<", "ns", 1e6},
		{"min >= 10us", "latency", "min", ">=", "ns", 10e3},
		{"error_rate < 0.1%", "error_rate", "", "<", "ratio", 0.001},
		{"error_rate<0.001", "error_rate", "", "<", "ratio", 0.001},
		{"loss <= 1%", "loss", "", "<=", "ratio", 0.01},
		{"loss < 1e-4", "loss", "", "<", "ratio", 1e-4},
		{"throughput > 9000", "throughput", "", ">", "msg/s", 9000},
		{"throughput >= 9500 msg/s", "throughput", "", ">=", "msg/s", 9500},
		{"rate_ratio >= 0.99", "rate_ratio", "", ">=", "ratio", 0.99},
		{"rate_ratio > 95%", "rate_ratio", "", ">", "ratio", 0.95},
		{"room_latency.p99 < 50ms", "room_latency", "p99", "<", "ns", 50e6},
		{"room_delivery >= 99.9%", "room_delivery", "", ">=", "ratio", 0.999},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.expr)
		if err != nil {
			t.Errorf("%q: %v", tt.expr, err)
			continue
		}
		if th.Metric != tt.metric || th.Stat != tt.stat || th.Op != tt.op || th.Unit != tt.unit ||
			math.Abs(th.Value-tt.value) > 1e-9*math.Abs(tt.value) {
			t.Errorf("%q: got %+v, want %s %s %s %v %s", tt.expr, th, tt.metric, tt.stat, tt.op, tt.value, tt.unit)
		}
	}
}

func TestParseThresholdErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ expr, want string }{
		{"p99<20mz", `"p99<20mz": unknown unit "mz" (want ns, us, ms, s)`},
		{"p99 < 20", `"p99 < 20": missing unit after 20 (want ns, us, ms, s)`},
		{"p99 < fast", `"p99 < fast": value "fast" is not a number`},
		{"p99 < -5ms", `"p99 < -5ms": value -5ms is negative`},
		{"p99 20ms", `"p99 20ms": no comparison; want <, <=, > or >=, as in "p99 < 50ms"`},
		{"p99 == 20ms", `"p99 == 20ms": unsupported comparison "=="; want <, <=, > or >=`},
		{"p99 =< 20ms", `"p99 =< 20ms": unsupported comparison "=<"; want <, <=, > or >=`},
		{"< 20ms", `"< 20ms": nothing before <; want a stat such as p99 or a metric such as error_rate`},
		{"p99 <", `"p99 <": no value after <`},
		{"", `empty threshold; want one like "p99 < 50ms"`},
		{"latancy.p99 < 20ms", `"latancy.p99 < 20ms": unknown metric "latancy"; did you mean "latency"? (want latency, service_time, connect, send_lag, error_rate, loss, throughput, rate_ratio, delivery, fanout, room_latency, room_delivery)`},
		{"jitter.p99 < 20ms", `"jitter.p99 < 20ms": unknown metric "jitter" (want latency, service_time, connect, send_lag, error_rate, loss, throughput, rate_ratio, delivery, fanout, room_latency, room_delivery)`},
		{"errors < 1%", `"errors < 1%": unknown stat or metric "errors"; stats are p50, p90, p99, p99.9, p99.99 (any pNN), min, max or mean; metrics are latency, service_time, connect, send_lag, error_rate, loss, throughput, rate_ratio, delivery, fanout, room_latency, room_delivery`},
		{"eror_rate < 1%", `"eror_rate < 1%": unknown metric "eror_rate"; did you mean "error_rate"? (want latency, service_time, connect, send_lag, error_rate, loss, throughput, rate_ratio, delivery, fanout, room_latency, room_delivery)`},
		{"latency.avg < 5ms", `"latency.avg < 5ms": unknown stat "avg" (want p50, p90, p99, p99.9, p99.99 (any pNN), min, max or mean)`},
		{"latency.mena < 5ms", `"latency.mena < 5ms": unknown stat "mena"; did you mean "mean"? (want p50, p90, p99, p99.9, p99.99 (any pNN), min, max or mean)`},
		{"p99x < 5ms", `"p99x < 5ms": unknown stat "p99x"; did you mean "p99"? (want p50, p90, p99, p99.9, p99.99 (any pNN), min, max or mean)`},
		{"p999 < 5ms", `"p999 < 5ms": percentile p999 out of range; want above p0 and at most p100`},
		{"p0 < 5ms", `"p0 < 5ms": percentile p0 out of range; want above p0 and at most p100`},
		{"latency < 5ms", `"latency < 5ms": latency needs a stat, as in latency.p99 (want p50, p90, p99, p99.9, p99.99 (any pNN), min, max or mean)`},
		{"error_rate.p99 < 1%", `"error_rate.p99 < 1%": error_rate is a single number and takes no stat; write "error_rate < ..."`},
		{"error_rate < 5", `"error_rate < 5": error_rate is at most 1 (100%), got 5; did you mean 5%?`},
		{"loss < 5ms", `"loss < 5ms": loss is a ratio: want a fraction like 0.001 or a percentage like 0.1%, got "5ms"`},
		{"throughput > 5k", `"throughput > 5k": unknown unit "k" for throughput (want msg/s, or no unit)`},
	}
	for _, tt := range tests {
		_, err := ParseThreshold(tt.expr)
		if err == nil {
			t.Errorf("%q: got no error, want %q", tt.expr, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("%q:\ngot  %s\nwant %s", tt.expr, got, tt.want)
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: got %T, want *Error", tt.expr, err)
		}
	}
}

func TestThresholdPercentile(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		expr string
		pct  float64
		ok   bool
	}{
		{"p99 < 1ms", 99, true},
		{"p99.9 < 1ms", 99.9, true},
		{"max < 1ms", 0, false},
		{"loss < 1%", 0, false},
	} {
		th, err := ParseThreshold(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		pct, ok := th.Percentile()
		if pct != tt.pct || ok != tt.ok {
			t.Errorf("%q: got %v, %v, want %v, %v", tt.expr, pct, ok, tt.pct, tt.ok)
		}
	}
}

// checkResult is a run with every metric a threshold can name: 10 s window,
// 20,000 sent at a planned 2,000 msg/s, 19,900 received, 100 lost, 40 errors,
// and latencies 1..10 ms (1,000 samples each).
func checkResult(t *testing.T) *result.Result {
	t.Helper()
	h := result.NewHistogram()
	for v := int64(1); v <= 10; v++ {
		if err := h.RecordValues(v*1_000_000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	lat, err := result.FromHDR(h)
	if err != nil {
		t.Fatal(err)
	}
	return &result.Result{
		Broadcast:  &result.Broadcast{Expected: 1000, Delivered: 999, Missing: 1, FanOut: lat},
		Plan:       result.PlanInfo{Mode: "open"},
		Window:     result.Window{StartNs: 0, EndNs: 10e9},
		Phases:     []result.PhaseRun{{StartNs: 0, EndNs: 10e9, PlannedRate: 2000}},
		Counters:   result.Counters{Sent: 20000, Received: 19900, Lost: 100, Errors: map[string]int64{"reset": 30, "timeout": 10}},
		Histograms: map[string]*result.Histogram{result.Latency: lat},
	}
}

func TestThresholdCheck(t *testing.T) {
	t.Parallel()
	r := checkResult(t)
	for _, tc := range []struct {
		expr     string
		pass     bool
		measured float64 // approximately (HDR precision)
		reason   string  // substring, when not measurable
	}{
		{"p50 < 6ms", true, 5e6, ""},
		{"p50 < 5ms", false, 5e6, ""},
		{"latency.p99 <= 10.1ms", true, 10e6, ""}, // HDR: 10.0002 ms, the top of its bucket
		{"p99.9 > 9ms", true, 10e6, ""},
		{"max < 10ms", false, 10e6, ""},
		{"min >= 0.99ms", true, 1e6, ""}, // HDR: 0.99994 ms, the bottom of its bucket
		{"mean < 5.6ms", true, 5.5e6, ""},
		{"error_rate < 0.5%", true, 0.002, ""},
		{"error_rate < 0.1%", false, 0.002, ""},
		{"loss <= 0.005", true, 0.005, ""},
		{"throughput >= 1990", true, 1990, ""},
		{"throughput > 2000", false, 1990, ""},
		{"rate_ratio >= 0.98", true, 1, ""},
		{"delivery >= 99.9%", true, 0.999, ""},
		{"delivery > 99.9%", false, 0.999, ""},
		{"fanout.p99 < 11ms", true, 10e6, ""},
		{"connect.p99 < 1s", false, 0, "no connect samples"},
		{"service_time.max < 1s", false, 0, "no service_time samples"},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got := th.Check(r)
		if got.Pass != tc.pass || got.Expr != tc.expr {
			t.Errorf("%s: pass %v, want %v (measured %v, reason %q)", tc.expr, got.Pass, tc.pass, got.Measured, got.Reason)
		}
		if tc.reason != "" {
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("%s: reason %q, want %q", tc.expr, got.Reason, tc.reason)
			}
			continue
		}
		if got.Reason != "" || math.Abs(got.Measured-tc.measured) > 0.01*tc.measured {
			t.Errorf("%s: measured %v (reason %q), want about %v", tc.expr, got.Measured, got.Reason, tc.measured)
		}
	}
}

// Metrics that need messages or a plan fail when there are none, saying so.
func TestThresholdCheckNotMeasurable(t *testing.T) {
	t.Parallel()
	empty := &result.Result{Plan: result.PlanInfo{Mode: "closed"}, Window: result.Window{StartNs: 5, EndNs: 5}}
	for _, tc := range []struct{ expr, reason string }{
		{"error_rate < 1%", "no message was sent"},
		{"loss < 1%", "no message was sent"},
		{"throughput > 1", "the measured window is empty"},
		{"rate_ratio > 0.9", "no planned rate"},
		{"p99 < 1s", "no latency samples"},
		{"delivery > 99%", "not a broadcast run"},
		{"fanout.p99 < 1s", "not a broadcast run"},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := th.Check(empty); got.Pass || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: pass %v, reason %q; want a failure because %q", tc.expr, got.Pass, got.Reason, tc.reason)
		}
	}
	th, _ := ParseThreshold("p99 < 1s")
	th.File, th.Line, th.Col = "s.yaml", 7, 5
	if got := th.Check(empty).Source; got != "s.yaml:7:5" {
		t.Errorf("source %q, want s.yaml:7:5", got)
	}
}

// roomResult is a broadcast run with three per-room entries: room-0 with
// latencies 1..10 ms and every delivery made, room-1 with 2..20 ms and 990
// of 1,000, and the aggregate of the rest with 1..10 ms and 999 of 1,000.
func roomResult(t *testing.T) *result.Result {
	t.Helper()
	hist := func(step int64) *result.Histogram {
		h := result.NewHistogram()
		for v := int64(1); v <= 10 && step > 0; v++ {
			if err := h.RecordValues(v*step, 100); err != nil {
				t.Fatal(err)
			}
		}
		x, err := result.FromHDR(h)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	return &result.Result{Broadcast: &result.Broadcast{Expected: 3000, Delivered: 2989, PerRoom: []result.RoomResult{
		{Name: "room-0", Rooms: 1, Expected: 1000, Delivered: 1000, Latency: hist(1e6)},
		{Name: "room-1", Rooms: 1, Expected: 1000, Delivered: 990, Latency: hist(2e6)},
		{Name: "(8 other rooms)", Rooms: 8, Expected: 1000, Delivered: 999, Latency: hist(1e6)},
		{Name: "room-9", Rooms: 1, Latency: hist(0)}, // step 0: nothing owed, no samples: left out
	}}}
}

// The room metrics hold when every per-room entry holds; the measured value
// is the worst entry's, and Room names it.
func TestThresholdCheckRooms(t *testing.T) {
	t.Parallel()
	r := roomResult(t)
	for _, tc := range []struct {
		expr     string
		pass     bool
		measured float64 // approximately (HDR precision)
		room     string
	}{
		{"room_latency.p99 < 50ms", true, 20e6, "room-1"},
		{"room_latency.p99 < 15ms", false, 20e6, "room-1"},
		{"room_latency.p50 <= 10.1ms", true, 10e6, "room-1"},
		{"room_latency.max < 10ms", false, 20e6, "room-1"},
		{"room_latency.min > 1.5ms", false, 1e6, "room-0"}, // >: the worst is the lowest
		{"room_delivery >= 99%", true, 0.99, "room-1"},
		{"room_delivery >= 99.9%", false, 0.99, "room-1"},
		{"room_delivery < 100%", false, 1, "room-0"}, // <: the worst is the highest
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got := th.Check(r)
		if got.Pass != tc.pass || got.Room != tc.room || got.Reason != "" {
			t.Errorf("%s: pass %v, room %q (reason %q); want pass %v, room %q", tc.expr, got.Pass, got.Room, got.Reason, tc.pass, tc.room)
		}
		if math.Abs(got.Measured-tc.measured) > 0.01*tc.measured {
			t.Errorf("%s: measured %v, want about %v", tc.expr, got.Measured, tc.measured)
		}
	}
	for _, tc := range []struct {
		expr   string
		r      *result.Result
		reason string
	}{
		{"room_latency.p99 < 1s", &result.Result{}, "not a broadcast run"},
		{"room_delivery > 99%", &result.Result{}, "not a broadcast run"},
		{"room_latency.p99 < 1s", &result.Result{Broadcast: &result.Broadcast{}}, "no room has latency samples"},
		{"room_delivery > 99%", &result.Result{Broadcast: &result.Broadcast{}}, "no room has deliveries owed"},
		{"room_latency.max < 1s", &result.Result{Broadcast: &result.Broadcast{PerRoom: []result.RoomResult{
			{Name: "quiet", Expected: 100}}}}, "room quiet was owed 100 deliveries and got none in time"},
	} {
		th, err := ParseThreshold(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := th.Check(tc.r); got.Pass || got.Reason != tc.reason {
			t.Errorf("%s: pass %v, reason %q; want a failure because %q", tc.expr, got.Pass, got.Reason, tc.reason)
		}
	}
}
