package reporters

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/result"
)

func TestDur(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ns   int64
		want string
	}{
		{0, "0ns"},
		{999, "999ns"},
		// dur takes whole nanoseconds: 999.6 ns cannot be passed, 1000 is the
		// first value shown in microseconds.
		{1000, "1.00us"},
		{int64(time.Microsecond), "1.00us"},
		{22_500, "22.5us"},
		{999_400, "999us"},
		{999_600, "1.00ms"}, // rounds into the next unit, not "1000us"
		{int64(1500 * time.Microsecond), "1.50ms"},
		{999_700_000, "1.00s"},
		{12_300_000_000, "12.3s"},
		{int64(90 * time.Second), "90.0s"},
	}
	for _, tc := range cases {
		if got, want := dur(tc.ns), tc.want; got != want {
			t.Errorf("dur(%d) = %q, want %q", tc.ns, got, want)
		}
	}
}

// Values just under a power of ten round up into the next decade: the result
// must keep three significant digits ("10.0us", "100us"), not four.
func TestDurDecadeCarry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ns   int64
		want string
	}{
		{9_996, "10.0us"},
		{99_960, "100us"},
		{9_996_000, "10.0ms"},
		{99_960_000, "100ms"},
		{9_996_000_000, "10.0s"},
	}
	for _, tc := range cases {
		if got, want := dur(tc.ns), tc.want; got != want {
			t.Errorf("dur(%d) = %q, want %q", tc.ns, got, want)
		}
	}
}

func TestSig3(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v    float64
		want string
	}{
		{1, "1.00"},
		{9.994, "9.99"},
		{22.5, "22.5"},
		{99.94, "99.9"},
		{100, "100"},
		{999.4, "999"},
	}
	for _, tc := range cases {
		if got, want := sig3(tc.v), tc.want; got != want {
			t.Errorf("sig3(%v) = %q, want %q", tc.v, got, want)
		}
	}
}

// hist builds a summarised histogram of the given samples (ns).
func hist(t *testing.T, samples ...int64) *result.Histogram {
	t.Helper()
	h := result.NewHistogram()
	for _, v := range samples {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	x, err := result.FromHDR(h)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// baseResult is a healthy open-loop run of two phases: 1 s at 100 msg/s
// then 3 s at 500 msg/s, so the duration-weighted planned rate is 400 msg/s.
func baseResult(t *testing.T) *result.Result {
	t.Helper()
	const ms = int64(time.Millisecond)
	return &result.Result{
		SchemaVersion: result.SchemaVersion,
		Plan: result.PlanInfo{
			Name: "echo", Target: "ws://127.0.0.1:9000/", Transport: "ws", Mode: "open",
			Engine: "goroutine", TimeoutNs: int64(time.Second), WarmupNs: 200 * ms,
		},
		Env:    result.Env{Sockbench: "v0.0.0-test", CPUs: 8},
		Window: result.Window{RampEndNs: 50 * ms, StartNs: 250 * ms, EndNs: 4250 * ms, DrainEndNs: 5250 * ms},
		Phases: []result.PhaseRun{
			{Name: "slow", StartNs: 250 * ms, EndNs: 1250 * ms, Conns: 10, PlannedRate: 100, Size: 64},
			{Name: "fast", StartNs: 1250 * ms, EndNs: 4250 * ms, Conns: 50, PlannedRate: 500, Size: 64},
		},
		Counters: result.Counters{
			ConnsOpened: 50, ConnsClosed: 50,
			Sent: 1400, Received: 1390, Lost: 4, InFlight: 6,
			WarmupSent: 20, WarmupReceived: 20,
			BytesSent: 1400 * 70, BytesReceived: 1390 * 70,
		},
		Histograms: map[string]*result.Histogram{
			result.Latency:     hist(t, 1*ms, 2*ms, 3*ms),
			result.ServiceTime: hist(t, 1*ms, 1*ms),
			result.Connect:     hist(t),
			result.SendLag:     hist(t, 20_000, 30_000, 40_000, 50_000),
		},
		Self: result.Self{CPUPercent: 12},
	}
}

func render(t *testing.T, r *result.Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := Text(&b, r); err != nil {
		t.Fatalf("Text: %v", err)
	}
	return b.String()
}

func TestText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		edit    func(r *result.Result)
		want    []string         // substrings the output must hold
		wantRe  []*regexp.Regexp // patterns the output must match
		notWant []string         // substrings it must not hold
	}{
		{
			name: "healthy open loop",
			want: []string{
				"sockbench v0.0.0-test: echo\n",
				"  target     ws://127.0.0.1:9000/\n",
				"transport  ws, engine goroutine",
				"open loop",
				"messages   sent 1400, received 1390, lost 4 (0.29% of sent), in flight at end 6\n",
				"errors     none, but 4 of 1400 messages (0.29%) were lost\n",
				// 1400 sent over the 4 s window is 350 msg/s; the plan asked for
				// (100*1 s + 500*3 s) / 4 s = 400 msg/s: 87.5%.
				"rate       sent 350 msg/s (planned 400, 87.5%), received 348 msg/s\n",
				"phase      slow       1.00s, 10 conns, 100 msg/s planned, 64 B\n",
				"phase      fast       3.00s, 50 conns, 500 msg/s planned, 64 B\n",
				"window     4.00s measured after 50.0ms ramp and 200ms warm-up",
				"warm-up    sent 20, received 20",
				"harness    cpu 12% of 8 cores, send lag p99 50.0us max 50.0us\n",
			},
			wantRe: []*regexp.Regexp{
				regexp.MustCompile(`(?m)^\s*latency\s+3\s+1\.00ms\s+2\.00ms\s`),
				regexp.MustCompile(`(?m)^\s*service_time\s+2\s+1\.00ms\s`),
				regexp.MustCompile(`(?m)^\s*connect\s+0(\s+-){8}\s*$`),
				regexp.MustCompile(`(?m)^\s*send_lag\s+4\s+20\.0us\s`),
			},
			notWant: []string{"UNACCOUNTED", "embedded", "CLOSED LOOP", "INTERRUPTED", "SATURATED", "threshold", "anomalies"},
		},
		{
			name: "embedded",
			edit: func(r *result.Result) { r.Plan.Embedded = true },
			want: []string{"  target     ws://127.0.0.1:9000/ (embedded reference server)\n"},
		},
		{
			name: "unaccounted",
			edit: func(r *result.Result) { r.Counters.Sent += 7 },
			want: []string{"messages   sent 1407, received 1390, lost 4 (0.28% of sent), in flight at end 6 (UNACCOUNTED 7)\n"},
		},
		{
			name: "closed loop",
			edit: func(r *result.Result) {
				r.Plan.Mode = "closed"
				for i := range r.Phases {
					r.Phases[i].PlannedRate, r.Phases[i].InFlight = 0, 2
				}
			},
			want: []string{
				"CLOSED LOOP",
				"closed loop, 2 in flight per conn",
				"rate       sent 350 msg/s, received 348 msg/s\n", // no planned figure
			},
			notWant: []string{"send_lag", "send lag", "planned 400"},
		},
		{
			name: "interrupted",
			edit: func(r *result.Result) { r.Interrupted = true },
			want: []string{"INTERRUPTED: partial result"},
		},
		{
			name: "errors sorted by class",
			edit: func(r *result.Result) {
				r.Counters.Errors = map[string]int64{"reset": 1, "refused": 2, "tls": 3}
			},
			want: []string{"errors     refused 2, reset 1, tls 3; and 4 of 1400 messages (0.29%) were lost\n"},
		},
		{
			name:    "nothing lost",
			edit:    func(r *result.Result) { r.Counters.Lost, r.Counters.InFlight, r.Counters.Sent = 0, 0, 1390 },
			want:    []string{"messages   sent 1390, received 1390, lost 0, in flight at end 0\n", "errors     none\n"},
			notWant: []string{"were lost", "WARNING"},
		},
		{
			// A server that answers only every 10th message: the loss
			// stands next to the errors, never "errors none" alone.
			name: "lossy server",
			edit: func(r *result.Result) {
				r.Counters.Sent, r.Counters.Received, r.Counters.Lost, r.Counters.InFlight = 5000, 500, 4500, 0
			},
			want: []string{
				"messages   sent 5000, received 500, lost 4500 (90.0% of sent), in flight at end 0\n",
				"errors     none, but 4500 of 5000 messages (90.0%) were lost\n",
			},
			notWant: []string{"errors     none\n"},
		},
		{
			name: "a tiny loss is not 0%",
			edit: func(r *result.Result) {
				r.Counters.Sent, r.Counters.Received, r.Counters.Lost, r.Counters.InFlight = 1_000_000, 999_999, 1, 0
			},
			want: []string{"lost 1 (<0.01% of sent)", "errors     none, but 1 of 1000000 messages (<0.01%) were lost\n"},
		},
		{
			name: "no reply matched: the target sent nothing",
			edit: func(r *result.Result) {
				c := &r.Counters
				c.Received, c.WarmupReceived, c.Lost, c.InFlight, c.BytesReceived = 0, 0, 1400, 0, 0
			},
			want: []string{"WARNING    no reply matched any of the 1420 messages sent: the target sent nothing back: does it echo each message"},
		},
		{
			name: "no reply matched: the target sent something else",
			edit: func(r *result.Result) {
				c := &r.Counters
				c.Received, c.WarmupReceived, c.Lost, c.InFlight, c.Unexpected = 0, 0, 1400, 0, 1400
				r.Rejected = []result.Rejected{{Kind: result.RejectUnparsed, Conn: 3, AtNs: 300_000_000, Length: 20,
					Reason: "wire: bad magic: not a sockbench measurement header", Bytes: []byte(`{"type":"pong"}` + "\x00\x01\xff\n\r")}}
			},
			want: []string{
				"WARNING    no reply matched any of the 1420 messages sent: the target sent 97300 bytes, none of them a reply to a message sent: does it echo each message unchanged (docs/protocol.md)? What it sent is shown under \"rejected\".\n",
				"  rejected   what the target sent that sockbench could not use (the first 1 kept):\n",
				"    1. unparsed, connection 3 at 300ms, 20 bytes: wire: bad magic: not a sockbench measurement header\n",
				"      00000000  7b 22 74 79 70 65 22 3a  22 70 6f 6e 67 22 7d 00  |{\"type\":\"pong\"}.|\n",
				"      00000010  01 ff 0a 0d                                       |....|\n",
			},
		},
		{
			name: "replies all late",
			edit: func(r *result.Result) {
				c := &r.Counters
				c.Received, c.WarmupReceived, c.Lost, c.InFlight, c.Late, c.WarmupLate = 0, 0, 1400, 0, 1400, 20
			},
			want: []string{"WARNING    no reply matched any of the 1420 messages sent: replies came, but every one after the 1.00s loss timeout: raise --timeout"},
		},
		{
			name: "warm-up counted apart",
			edit: func(r *result.Result) {
				c := &r.Counters
				c.WarmupLost, c.WarmupDuplicates, c.WarmupLate = 3, 2, 1
			},
			want:    []string{"warm-up    sent 20, received 20, lost 3, duplicates 2, late 1 (not in the figures above)\n"},
			notWant: []string{"anomalies"},
		},
		{
			name: "stopped: every connection lost",
			edit: func(r *result.Result) {
				r.Stopped = &result.Stop{AtNs: 1_500_000_000, Reason: "every connection was lost and none remained at 1.5s: 50 opened, 50 dropped, 0 failed to open (errors: reset 50)"}
				r.Window.EndNs = 1_500_000_000
			},
			want: []string{"  STOPPED at 1.50s: every connection was lost and none remained at 1.5s: 50 opened, 50 dropped, 0 failed to open (errors: reset 50); a partial result, measured up to 1.50s\n"},
		},
		{
			name: "anomalies",
			edit: func(r *result.Result) { r.Counters.Duplicates, r.Counters.Unexpected = 2, 5 },
			want: []string{"anomalies  duplicates 2, reordered 0, late 0, unexpected 5\n"},
		},
		{
			name: "saturated with warnings",
			edit: func(r *result.Result) {
				r.Self.Saturated = true
				r.Self.Warnings = []string{"send lag p99 above 1ms", "cpu above 90%"}
			},
			want: []string{
				", SATURATED: the load generator limited this run\n",
				"  note       send lag p99 above 1ms\n",
				"  note       cpu above 90%\n",
			},
		},
		{
			name: "thresholds",
			edit: func(r *result.Result) {
				r.Thresholds = []string{"p99 < 10ms", "error_rate < 1%", "throughput > 5000", "connect.p99 < 1ms", "old"}
				r.Checks = []result.ThresholdResult{
					{Expr: "p99 < 10ms", Source: "s.yaml:9:5", Metric: "latency", Measured: 2.5e6, Unit: "ns", Pass: true},
					{Expr: "error_rate < 1%", Metric: "error_rate", Measured: 0.0123, Unit: "ratio"},
					{Expr: "throughput > 5000", Source: "--threshold", Metric: "throughput", Measured: 4321, Unit: "msg/s"},
					{Expr: "connect.p99 < 1ms", Metric: "connect", Unit: "ns", Reason: "no connect samples"},
				}
			},
			want: []string{
				"  threshold  pass  p99 < 10ms: measured 2.50ms (s.yaml:9:5)\n",
				"  threshold  FAIL  error_rate < 1%: measured 1.23%\n",
				"  threshold  FAIL  throughput > 5000: measured 4321 msg/s (--threshold)\n",
				"  threshold  FAIL  connect.p99 < 1ms: not measurable: no connect samples\n",
				"  threshold  old (not checked)\n",
			},
		},
		{
			name: "tcp framing",
			edit: func(r *result.Result) { r.Plan.Transport, r.Plan.Framing = "tcp", "len32" },
			want: []string{"transport  tcp (len32 framing), engine goroutine\n"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := baseResult(t)
			if tc.edit != nil {
				tc.edit(r)
			}
			out := render(t, r)
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, re := range tc.wantRe {
				if !re.MatchString(out) {
					t.Errorf("output does not match %s:\n%s", re, out)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(out, s) {
					t.Errorf("output holds %q:\n%s", s, out)
				}
			}
		})
	}
}

// The histogram rows keep the fixed order latency, service_time, connect,
// send_lag, whatever the map order.
func TestTextHistogramOrder(t *testing.T) {
	t.Parallel()
	out := render(t, baseResult(t))
	prev := -1
	for _, name := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		re := regexp.MustCompile(`(?m)^\s*` + name + `\s+\d`)
		loc := re.FindStringIndex(out)
		if loc == nil {
			t.Fatalf("no %s row:\n%s", name, out)
		}
		if loc[0] <= prev {
			t.Errorf("%s row out of order:\n%s", name, out)
		}
		prev = loc[0]
	}
}

// A histogram left out of the map is skipped, not printed as zero.
func TestTextMissingHistogram(t *testing.T) {
	t.Parallel()
	r := baseResult(t)
	delete(r.Histograms, result.Connect)
	out := render(t, r)
	if strings.Contains(out, "connect ") {
		t.Errorf("output has a connect row for a missing histogram:\n%s", out)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	iv := result.Interval{
		TNs: 2_500_000_000, Phase: "steady", OpenConns: 20, Sent: 100, Received: 99, Lost: 2,
		SendRate: 100, RecvRate: 99, P50Ns: 1_500_000, P99Ns: 4_000_000, SendLagMaxNs: 25_000, Errors: 3,
	}
	cases := []struct {
		name    string
		planned float64
		edit    func(iv *result.Interval)
		want    []string
		notWant []string
	}{
		{
			name: "open loop", planned: 200,
			want: []string{"[   2.5s]", "steady", "conns 20", "send 100/200 msg/s", "recv 99 msg/s",
				"p50 1.50ms", "p99 4.00ms", "lag 25.0us", "lost 2", "errors 3"},
		},
		{
			name: "no samples", planned: 200, edit: func(iv *result.Interval) { iv.Sent, iv.Received = 0, 0 },
			want: []string{"p50 -  p99 -  lag -  lost 2"},
		},
		{
			name: "closed loop", planned: 0,
			want:    []string{"send 100 msg/s"},
			notWant: []string{"/0", "100/"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			iv := iv
			iv.PlannedRate = tc.planned
			if tc.edit != nil {
				tc.edit(&iv)
			}
			Progress(&b, iv)
			out := b.String()
			if got, want := strings.Count(out, "\n"), 1; got != want {
				t.Fatalf("%d lines, want %d: %q", got, want, out)
			}
			if !strings.HasSuffix(out, "\n") {
				t.Errorf("line not terminated: %q", out)
			}
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("progress line lacks %q: %q", s, out)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(out, s) {
					t.Errorf("progress line holds %q: %q", s, out)
				}
			}
		})
	}
}

func TestBytesIEC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.00 KiB"},
		{1536, "1.50 KiB"},
		{20*1<<20 + 300<<10, "20.3 MiB"},
		{3 << 30, "3.00 GiB"},
	}
	for _, tt := range tests {
		if got := bytesIEC(tt.in); got != tt.want {
			t.Errorf("bytesIEC(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
