package reporters

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/result"
)

// spread is a histogram of n samples spread log-uniformly from lo to hi ns
// with a tail: a realistic latency shape, deterministic.
func spread(t *testing.T, n int, lo, hi float64) *result.Histogram {
	t.Helper()
	h := result.NewHistogram()
	for i := range n {
		q := float64(i) / float64(n)
		v := lo * math.Pow(hi/lo, math.Pow(q, 6)) // most samples near lo, a long tail to hi
		if err := h.RecordValue(int64(v)); err != nil {
			t.Fatal(err)
		}
	}
	x, err := result.FromHDR(h)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// richResult is baseResult with what a real 25 s run holds: 25 intervals
// (warm-up, two phases, drain), large histograms, a failed threshold, a
// warning; with broadcast, a Broadcast section of three room entries.
// Strings carry markup to check the escaping.
func richResult(t *testing.T, broadcast bool) *result.Result {
	t.Helper()
	const ms = int64(time.Millisecond)
	r := baseResult(t)
	r.Scenario = []byte(`{"name":"echo","file":"builtin:echo","description":"<b>bold</b> & co"}`)
	r.StartedAt = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	r.Histograms[result.Latency] = spread(t, 20000, 20e3, 12e6)
	r.Histograms[result.ServiceTime] = spread(t, 20000, 18e3, 3e6)
	r.Histograms[result.Connect] = spread(t, 50, 100e3, 9e6)
	r.Self.Warnings = []string{"<i>careful</i>: the reference server ran in the same process"}
	r.Checks = []result.ThresholdResult{
		{Expr: "p99 < 10ms", Source: "builtin:echo:16:5", Metric: "latency", Measured: 2.5e6, Unit: "ns", Pass: true},
		{Expr: "error_rate < 0.1%", Source: "--threshold", Metric: "error_rate", Measured: 0.002, Unit: "ratio"},
	}
	for i := range 25 {
		phase := "fast"
		switch {
		case i < 2:
			phase = "warmup"
		case i < 6:
			phase = "<slow>"
		case i == 24:
			phase = "drain"
		}
		rate := 500.0 + float64(i%3)
		r.Intervals = append(r.Intervals, result.Interval{
			TNs: int64(i+1) * 1000 * ms, Phase: phase, Sent: int64(rate), Received: int64(rate) - 1, Lost: int64(i % 5 / 4),
			SendRate: rate, RecvRate: rate - 1, PlannedRate: 500, OpenConns: 50, Errors: int64(i % 7 / 6),
			P50Ns: 20_000 + int64(i)*100, P99Ns: 900_000 + int64(i%4)*100_000, MaxNs: 3*ms + int64(i)*ms/10,
			SendLagP99Ns: 30_000, SendLagMaxNs: 200_000, RSSBytes: 30 << 20,
		})
	}
	if broadcast {
		r.Broadcast = &result.Broadcast{
			Namespace: "/chat", Rooms: 12, Subscribers: 1200, Publishers: 12,
			Publishes: 1000, FannedOut: 1000, Expected: 99000, Delivered: 98990, Missing: 10, Duplicated: 1, Extra: 2, Late: 3, Complete: 995,
			FanOut: spread(t, 995, 200e3, 20e6),
			PerRoom: []result.RoomResult{
				{Name: "<script>alert(1)</script>", Rooms: 1, Members: 500, Publishes: 100, Expected: 49900, Delivered: 49890, Missing: 10,
					Latency: spread(t, 49890, 30e3, 20e6), FanOut: spread(t, 95, 300e3, 20e6)},
				{Name: "room&1", Rooms: 1, Members: 300, Publishes: 100, Expected: 29900, Delivered: 29900,
					Latency: spread(t, 29900, 25e3, 8e6), FanOut: spread(t, 100, 200e3, 8e6)},
				{Name: "(10 other rooms)", Rooms: 10, Members: 400, Publishes: 800, Expected: 19200, Delivered: 19200, Duplicated: 1, Extra: 2,
					Latency: spread(t, 19200, 20e3, 5e6), FanOut: spread(t, 800, 100e3, 5e6)},
			},
		}
	}
	return r
}

func renderHTML(t *testing.T, r *result.Result) string {
	t.Helper()
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatalf("HTML: %v", err)
	}
	return b.String()
}

func TestHTML(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		broadcast bool
		edit      func(r *result.Result)
		charts    int
		want      []string
		notWant   []string
	}{
		{
			name: "echo", charts: 5,
			want: []string{
				"<title>sockbench report: echo</title>",
				"&lt;b&gt;bold&lt;/b&gt; &amp; co", // scenario description, escaped
				"echo (builtin:echo)",
				"ws://127.0.0.1:9000/",
				`<span class="fail">FAIL</span></td><td>error_rate &lt; 0.1%</td><td>measured 0.20%`,
				"&lt;i&gt;careful&lt;/i&gt;",
				"Threshold failed: error_rate &lt; 0.1%",
				"latency (ms)", // the distribution's y axis, in ms
				"time since start (s)",
				"rate (msg/s)",
				">99.9%<", ">99.99%<", // nines ticks: 20000 samples reach 1/(1-p) = 20000
				"planned rate", "stroke-dasharray",
				">measured<", // the measured window's band
			},
			notWant: []string{"<script", "<b>bold", "<i>careful", "Broadcast", "Interrupted", "Saturated"},
		},
		{
			name: "broadcast", broadcast: true, charts: 8,
			want: []string{
				"<h2>Broadcast</h2>",
				"&lt;script&gt;alert(1)&lt;/script&gt;", "room&amp;1", "(10 other rooms)",
				"expected 99000, delivered 98990 (99.990%), missing 10, duplicated 1, extra 2, late 3",
				"99.980%", // room 1: 49890/49900
				"Delivery ratio per room", "Fan-out completion", "fan-out completion (ms)",
			},
			notWant: []string{"<script"},
		},
		{
			name: "interrupted saturated closed", charts: 5,
			edit: func(r *result.Result) {
				r.Interrupted, r.Self.Saturated, r.Plan.Mode = true, true, "closed"
			},
			want:    []string{"Interrupted: a partial result", "Saturated: the load generator", "Closed loop:", "YES: the load generator limited this run"},
			notWant: []string{"planned rate"},
		},
		{
			name: "lossy target that sent garbage, stopped early", charts: 5,
			edit: func(r *result.Result) {
				c := &r.Counters
				c.Received, c.WarmupReceived, c.Lost, c.InFlight, c.Unexpected = 0, 0, 1400, 0, 1400
				r.Stopped = &result.Stop{AtNs: 2_000_000_000, Reason: "every connection was lost and none remained at 2s"}
				r.Rejected = []result.Rejected{{Kind: result.RejectUnmatched, Conn: 7, AtNs: 300_000_000, Length: 300,
					Reason: "a measurement header for connection 9", Bytes: []byte("<b>hi</b>\x00")}}
			},
			want: []string{
				"Loss: 1400 of 1400 messages (100%) were lost.",
				"Warning: no reply matched any of the 1420 messages sent",
				"Stopped at 2.00s: every connection was lost and none remained at 2s.",
				"<h2>Rejected</h2>",
				"1. unmatched, connection 7 at 300ms, 300 bytes, the first 10 shown: a measurement header for connection 9",
				"00000000  3c 62 3e 68 69 3c 2f 62  3e 00 ", "|&lt;b&gt;hi&lt;/b&gt;.|",
				"none, but 1400 of 1400 messages (100%) were lost",
			},
			notWant: []string{"<b>hi"},
		},
		{
			name: "empty histograms and no intervals", charts: 5,
			edit: func(r *result.Result) {
				r.Intervals = nil
				r.Histograms[result.Latency] = hist(t)
				r.Histograms[result.ServiceTime] = hist(t)
			},
			want: []string{"<td>latency</td><td>0</td><td>-</td>"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := richResult(t, tc.broadcast)
			if tc.edit != nil {
				tc.edit(r)
			}
			out := renderHTML(t, r)
			if got := strings.Count(out, `<svg class="chart"`); got != tc.charts {
				t.Errorf("%d charts, want %d", got, tc.charts)
			}
			checkContains(t, out, tc.want, tc.notWant)
			checkSelfContained(t, out)
		})
	}
}

// checkSelfContained fails if the page would fetch anything: no script,
// stylesheet, image, font or frame from anywhere. The SVG namespace URI is
// an identifier, never fetched; a link within the page (href="#...") is
// allowed.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<(script|link|img|iframe|object|embed)\b`),
		regexp.MustCompile(`(?i)\bsrc\s*=|\bhref\s*=\s*"?[^"#]`),
		regexp.MustCompile(`(?i)@import|url\(`),
	} {
		if m := re.FindString(page); m != "" {
			t.Errorf("report is not self-contained: %q", m)
		}
	}
	if n := strings.Count(page, "http"); n != strings.Count(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("report names %d URLs besides the SVG namespace", n-strings.Count(page, "xmlns="))
	}
}

// labels joins tick labels with spaces.
func labels(ts []tick) string {
	var l []string
	for _, tk := range ts {
		l = append(l, tk.Label)
	}
	return strings.Join(l, " ")
}

// checkContains fails for each of want that out lacks and each of notWant
// that it holds.
func checkContains(t *testing.T, out string, want, notWant []string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	for _, s := range notWant {
		if strings.Contains(out, s) {
			t.Errorf("output holds %q:\n%s", s, out)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		lo, hi float64
		want   string
	}{
		{0, 1, "0 0.2 0.4 0.6 0.8 1"},
		{0, 10.5, "0 5 10 15"},
		{0, 0.3, "0 0.1 0.2 0.3"},
		{0, 0.26, "0 0.1 0.2 0.3"},
		{0, 10500, "0 5k 10k 15k"},
		{0, 1500, "0 500 1k 1.5k"},
		{3, 24.7, "5 10 15 20 25"},
		{0, 0, "0 0.2 0.4 0.6 0.8 1"}, // an empty range becomes 0..1
		{0, 2.5e6, "0 500k 1M 1.5M 2M 2.5M"},
	}
	for _, tc := range cases {
		if g := labels(niceTicks(tc.lo, tc.hi)); g != tc.want {
			t.Errorf("niceTicks(%v, %v) = %s, want %s", tc.lo, tc.hi, g, tc.want)
		}
	}
}

func TestNinesTicks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		maxX float64
		want string
	}{
		{0.5, "0% 50% 90% 99%"},
		{2.9, "0% 50% 90% 99%"},
		{3, "0% 50% 90% 99% 99.9%"},
		{4.3, "0% 50% 90% 99% 99.9% 99.99%"},
	}
	for _, tc := range cases {
		if g := labels(ninesTicks(tc.maxX)); g != tc.want {
			t.Errorf("ninesTicks(%v) = %s, want %s", tc.maxX, g, tc.want)
		}
	}
	if got := ninesX(99); math.Abs(got-2) > 1e-9 {
		t.Errorf("ninesX(99) = %v, want 2", got)
	}
}

func TestDurUnit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		max   float64
		scale float64
		unit  string
	}{
		{0, 1, "ns"}, {999, 1, "ns"}, {1000, 1e3, "us"}, {999e3, 1e3, "us"}, {3.2e6, 1e6, "ms"}, {2e9, 1e9, "s"},
	}
	for _, tc := range cases {
		if s, u := durUnit(tc.max); s != tc.scale || u != tc.unit {
			t.Errorf("durUnit(%v) = %v %s, want %v %s", tc.max, s, u, tc.scale, tc.unit)
		}
	}
}

// TestLineChartGeometry: points stay inside the plotting area, and a chart
// with no data still draws its axes.
func TestLineChartGeometry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		series []series
		polys  int
	}{
		{"two series", []series{{Name: "a", X: []float64{1, 2, 3}, Y: []float64{0, 5, 2}}, {Name: "b", X: []float64{1, 3}, Y: []float64{1, 1}}}, 2},
		{"no data", nil, 0},
		{"flat zero", []series{{Name: "z", X: []float64{0, 1}, Y: []float64{0, 0}}}, 1},
	}
	for _, tc := range cases {
		v := lineChart{Title: "t", XLabel: "x (s)", YLabel: "y (ms)", Series: tc.series}.view()
		if len(v.Polys) != tc.polys {
			t.Errorf("%s: %d polylines, want %d", tc.name, len(v.Polys), tc.polys)
		}
		for _, p := range v.Polys {
			for _, pt := range strings.Fields(p.Points) {
				var x, y float64
				if _, err := fmt.Sscanf(pt, "%f,%f", &x, &y); err != nil {
					t.Fatalf("%s: point %q: %v", tc.name, pt, err)
				}
				if x < plotLeft || x > chartW-plotRight || y < plotTop || y > plotTop+plotH {
					t.Errorf("%s: point %q outside the plot", tc.name, pt)
				}
			}
		}
		if len(v.Lines) < 2 || v.W != chartW || v.H <= plotTop+plotH {
			t.Errorf("%s: no axes or a bad size: %d lines, %dx%d", tc.name, len(v.Lines), v.W, v.H)
		}
	}
}

func TestCSV(t *testing.T) {
	t.Parallel()
	r := richResult(t, false)
	var b bytes.Buffer
	if err := CSV(&b, r); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if got, want := len(rows), 1+len(r.Intervals); got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	if got, want := strings.Join(rows[0], ","), strings.Join(csvColumns, ","); got != want {
		t.Errorf("header %s, want %s", got, want)
	}
	cases := []struct {
		row  int
		col  string
		want string
	}{
		{1, "t_ns", "1000000000"},
		{1, "phase", "warmup"},
		{3, "phase", "<slow>"},
		{3, "send_rate", "502"},
		{25, "phase", "drain"},
		{25, "rss_bytes", "31457280"},
	}
	for _, tc := range cases {
		col := -1
		for i, c := range rows[0] {
			if c == tc.col {
				col = i
			}
		}
		if got := rows[tc.row][col]; got != tc.want {
			t.Errorf("row %d %s = %q, want %q", tc.row, tc.col, got, tc.want)
		}
	}
}

func TestHistogramsAndHGRM(t *testing.T) {
	t.Parallel()
	cases := []struct {
		broadcast bool
		want      string
	}{
		{false, "latency service_time connect send_lag"},
		{true, "latency service_time connect send_lag fanout"},
	}
	for _, tc := range cases {
		r := richResult(t, tc.broadcast)
		var names []string
		for _, n := range Histograms(r) {
			names = append(names, n.Name)
			var b bytes.Buffer
			if err := HGRM(&b, n.Hist); err != nil {
				t.Fatalf("HGRM %s: %v", n.Name, err)
			}
			out := b.String()
			if !strings.HasPrefix(out, " Value\tPercentile\tTotalCount\t1/(1-Percentile)\n") || !strings.Contains(out, "#[Max     =") {
				t.Errorf("%s: not an .hgrm distribution:\n%s", n.Name, out)
			}
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("Histograms = %s, want %s", got, tc.want)
		}
	}
	// Values are in ms: the latency max of 12 ms prints as about 12.000.
	var b bytes.Buffer
	if err := HGRM(&b, richResult(t, false).Histograms[result.Latency]); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`#\[Max     =\s+1[12]\.\d{3},`).MatchString(b.String()) {
		t.Errorf("max not in ms:\n%s", b.String())
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	r := richResult(t, true)
	var b bytes.Buffer
	if err := JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	back, err := result.Decode("report.json", b.Bytes())
	if err != nil {
		t.Fatalf("JSON output does not read back: %v", err)
	}
	if back.Broadcast == nil || len(back.Intervals) != 25 || back.Histograms[result.Latency].Count != 20000 {
		t.Errorf("JSON lost data: %+v", back.Counters)
	}
}
