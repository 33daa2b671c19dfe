package scenarios

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/sockbench/sockbench/internal/result"
)

// Threshold is a pass/fail condition on a run's results, written
// "[metric.]stat OP value" ("p99 < 50ms", "send_lag.max < 5ms") or, for
// metrics that are a single number, "metric OP value" ("error_rate < 0.1%").
// A run passes the threshold when the measured value compares to Value as Op
// says.
//
// Metrics and their units:
//
//	latency       receive time minus intended send time (the default metric)   ns
//	service_time  receive time minus actual send time                           ns
//	connect       connect plus handshake time                                   ns
//	send_lag      how late sends were against their schedule                    ns
//	error_rate    errors as a fraction of messages sent                         ratio
//	loss          lost messages as a fraction of messages sent                  ratio
//	throughput    messages received per second                                  msg/s
//	rate_ratio    achieved send rate over planned send rate                     ratio
//	delivery      broadcast: deliveries made over deliveries owed               ratio
//	fanout        broadcast: publish to its last owed delivery                  ns
//	room_latency  broadcast: latency of each per-room entry; all must hold      ns
//	room_delivery broadcast: delivery of each per-room entry; all must hold     ratio
//
// The room metrics hold when they hold for every entry of the result's
// per_room list (the largest rooms, and the rest as one entry); the
// measured value is the worst entry's, named in ThresholdResult.Room.
//
// latency, service_time, connect, send_lag, fanout and room_latency take a stat: pNN (p50, p90, p99, p99.9, p99.99, any
// percentile above 0 and up to 100), min, max or mean, and a value with a unit
// of ns, us (or µs), ms or s. Ratios are written as a fraction (0.001) or a
// percentage (0.1%) and stored as a fraction.
type Threshold struct {
	Expr   string  `json:"expr"`           // as written
	Metric string  `json:"metric"`         // one of the metrics above
	Stat   string  `json:"stat,omitempty"` // p99, p99.9, min, max, mean; empty for single-number metrics
	Op     string  `json:"op"`             // <, <=, > or >=
	Value  float64 `json:"value"`          // in Unit
	Unit   string  `json:"unit"`           // "ns", "ratio" (a fraction) or "msg/s"

	// Where the threshold was written, if in a scenario file.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// Percentile returns the percentile of a pNN stat, as a percentage (99.9 for
// p99.9, the form hdrhistogram's ValueAtQuantile takes); ok is false for
// other stats.
func (t Threshold) Percentile() (pct float64, ok bool) {
	if !strings.HasPrefix(t.Stat, "p") {
		return 0, false
	}
	q, err := strconv.ParseFloat(t.Stat[1:], 64)
	return q, err == nil
}

// String is the expression as written.
func (t Threshold) String() string { return t.Expr }

type metricKind int

const (
	durationMetric metricKind = iota // takes a stat; value in ns
	ratioMetric                      // no stat; fraction
	rateMetric                       // no stat; msg/s
)

var thresholdMetrics = []struct {
	name string
	kind metricKind
}{
	{"latency", durationMetric},
	{"service_time", durationMetric},
	{"connect", durationMetric},
	{"send_lag", durationMetric},
	{"error_rate", ratioMetric},
	{"loss", ratioMetric},
	{"throughput", rateMetric},
	{"rate_ratio", ratioMetric},
	{"delivery", ratioMetric},
	{"fanout", durationMetric},
	{"room_latency", durationMetric},
	{"room_delivery", ratioMetric},
}

func metricNames() []string {
	names := make([]string, len(thresholdMetrics))
	for i, m := range thresholdMetrics {
		names[i] = m.name
	}
	return names
}

func metricKindOf(name string) (metricKind, bool) {
	for _, m := range thresholdMetrics {
		if m.name == name {
			return m.kind, true
		}
	}
	return 0, false
}

const (
	statList = "p50, p90, p99, p99.9, p99.99 (any pNN), min, max or mean"
	unitList = "ns, us, ms, s"
)

// ParseThreshold parses one threshold expression (see Threshold). Spaces are
// optional: "p99<20ms" and "latency.p99 < 20ms" are the same threshold.
// Problems are *Error values without a position, quoting the expression.
func ParseThreshold(expr string) (Threshold, error) {
	t := Threshold{Expr: strings.TrimSpace(expr)}
	bad := func(format string, args ...any) (Threshold, error) {
		return Threshold{}, &Error{Msg: fmt.Sprintf("%q: ", t.Expr) + fmt.Sprintf(format, args...)}
	}
	e := t.Expr
	if e == "" {
		return Threshold{}, &Error{Msg: "empty threshold; want one like \"p99 < 50ms\""}
	}
	i := strings.IndexAny(e, "<>=!")
	if i < 0 {
		return bad("no comparison; want <, <=, > or >=, as in \"p99 < 50ms\"")
	}
	j := i
	for j < len(e) && strings.IndexByte("<>=!", e[j]) >= 0 {
		j++
	}
	t.Op = e[i:j]
	switch t.Op {
	case "<", "<=", ">", ">=":
	default:
		return bad("unsupported comparison %q; want <, <=, > or >=", t.Op)
	}
	lhs := strings.ToLower(strings.Join(strings.Fields(e[:i]), ""))
	rhs := strings.Join(strings.Fields(e[j:]), "")
	if lhs == "" {
		return bad("nothing before %s; want a stat such as p99 or a metric such as error_rate", t.Op)
	}
	if rhs == "" {
		return bad("no value after %s", t.Op)
	}

	// Metric and stat. The stat may hold a dot itself (p99.9).
	var stat string
	kind, ok := metricKindOf(lhs)
	switch {
	case ok:
		t.Metric = lhs
	case strings.Contains(lhs, "."):
		d := strings.IndexByte(lhs, '.')
		if k, ok := metricKindOf(lhs[:d]); ok {
			t.Metric, stat, kind = lhs[:d], lhs[d+1:], k
		} else if statShaped(lhs) {
			t.Metric, stat, kind = "latency", lhs, durationMetric
		} else {
			return bad("%s", unknownMetric(lhs[:d]))
		}
	case statShaped(lhs):
		t.Metric, stat, kind = "latency", lhs, durationMetric
	default:
		if s, ok := suggest(lhs, metricNames()); ok {
			return bad("unknown metric %q; did you mean %q? (want %s)", lhs, s, strings.Join(metricNames(), ", "))
		}
		return bad("unknown stat or metric %q; stats are %s; metrics are %s", lhs, statList, strings.Join(metricNames(), ", "))
	}
	if kind == durationMetric {
		if stat == "" {
			return bad("%s needs a stat, as in %s.p99 (want %s)", t.Metric, t.Metric, statList)
		}
		s, msg := parseStat(stat)
		if msg != "" {
			return bad("%s", msg)
		}
		t.Stat = s
	} else if stat != "" {
		return bad("%s is a single number and takes no stat; write \"%s %s ...\"", t.Metric, t.Metric, t.Op)
	}

	// Value.
	v, unit, ok := splitNumber(rhs)
	if !ok {
		return bad("value %q is not a number", rhs)
	}
	if v < 0 {
		return bad("value %s is negative", rhs)
	}
	switch kind {
	case durationMetric:
		mult, ok := map[string]float64{"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}[unit]
		switch {
		case unit == "":
			return bad("missing unit after %s (want %s)", rhs, unitList)
		case !ok:
			return bad("unknown unit %q (want %s)", unit, unitList)
		}
		t.Value, t.Unit = v*mult, "ns"
	case ratioMetric:
		switch unit {
		case "%":
			// Parsed as the decimal it is, so that 99.9% is the same
			// float64 as 0.999 (v/100 is one ulp above it, and a ratio of
			// exactly 999/1000 would fail ">= 99.9%").
			v, _ = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rhs), "%")+"e-2", 64)
		case "":
		default:
			return bad("%s is a ratio: want a fraction like 0.001 or a percentage like 0.1%%, got %q", t.Metric, rhs)
		}
		if t.Metric != "rate_ratio" && v > 1 {
			return bad("%s is at most 1 (100%%), got %s; did you mean %s%%?", t.Metric, rhs, rhs)
		}
		t.Value, t.Unit = v, "ratio"
	case rateMetric:
		switch unit {
		case "", "msg/s", "msgs/s", "/s":
		default:
			return bad("unknown unit %q for %s (want msg/s, or no unit)", unit, t.Metric)
		}
		t.Value, t.Unit = v, "msg/s"
	}
	return t, nil
}

// statShaped reports whether s looks like a stat rather than a metric.
func statShaped(s string) bool {
	switch s {
	case "min", "max", "mean":
		return true
	}
	return len(s) > 1 && s[0] == 'p' && (s[1] >= '0' && s[1] <= '9' || s[1] == '.')
}

// parseStat checks a stat and puts a percentile in canonical form (p99.90 ->
// p99.9). It returns a message when s is not a stat.
func parseStat(s string) (string, string) {
	switch s {
	case "min", "max", "mean":
		return s, ""
	}
	if len(s) > 1 && s[0] == 'p' && strings.Trim(s[1:], "0123456789.") == "" {
		q, err := strconv.ParseFloat(s[1:], 64)
		if err == nil {
			if q <= 0 || q > 100 {
				return "", fmt.Sprintf("percentile %s out of range; want above p0 and at most p100", s)
			}
			return "p" + num(q), ""
		}
	}
	known := []string{"min", "max", "mean", "p50", "p90", "p99", "p99.9", "p99.99"}
	if k, ok := suggest(s, known); ok {
		return "", fmt.Sprintf("unknown stat %q; did you mean %q? (want %s)", s, k, statList)
	}
	return "", fmt.Sprintf("unknown stat %q (want %s)", s, statList)
}

func unknownMetric(m string) string {
	if s, ok := suggest(m, metricNames()); ok {
		return fmt.Sprintf("unknown metric %q; did you mean %q? (want %s)", m, s, strings.Join(metricNames(), ", "))
	}
	return fmt.Sprintf("unknown metric %q (want %s)", m, strings.Join(metricNames(), ", "))
}

// splitNumber splits "20ms" into 20 and "ms". The number is decimal, with an
// optional sign, fraction and exponent.
func splitNumber(s string) (float64, string, bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
		digits++
	}
	if digits == 0 {
		return 0, "", false
	}
	// An exponent only if digits follow, so that units are left alone.
	if i+1 < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if s[j] == '+' || s[j] == '-' {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			i = j
		}
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, "", false
	}
	return v, s[i:], true
}

// holds reports whether a measured value v passes t.
func (t Threshold) holds(v float64) bool {
	switch t.Op {
	case "<":
		return v < t.Value
	case "<=":
		return v <= t.Value
	case ">":
		return v > t.Value
	case ">=":
		return v >= t.Value
	}
	return false
}

// Check measures t's metric in r and compares it. A metric that cannot be
// measured (a histogram with no samples, no message sent, a closed loop's
// rate_ratio) fails, with the reason.
func (t Threshold) Check(r *result.Result) result.ThresholdResult {
	out := result.ThresholdResult{Expr: t.Expr, Metric: t.Metric, Unit: t.Unit}
	if t.File != "" {
		out.Source = t.File
		if t.Line > 0 {
			out.Source = fmt.Sprintf("%s:%d:%d", t.File, t.Line, t.Col)
		}
	}
	var v float64
	var reason string
	if strings.HasPrefix(t.Metric, "room_") {
		v, out.Room, reason = t.measureRooms(r)
	} else {
		v, reason = t.measure(r)
	}
	if reason != "" {
		out.Reason = reason
		return out
	}
	out.Measured = v
	out.Pass = t.holds(v)
	return out
}

// measureRooms measures a room metric in each per-room entry of r and
// returns the worst entry's value and name: the highest for < and <=, the
// lowest for > and >=, so that the threshold holds for every entry exactly
// when it holds for the worst. Entries with nothing to measure (no latency
// samples, no delivery owed) are left out.
func (t Threshold) measureRooms(r *result.Result) (float64, string, string) {
	if r.Broadcast == nil {
		return 0, "", "not a broadcast run"
	}
	base := t
	base.Metric = strings.TrimPrefix(t.Metric, "room_")
	var worst float64
	var name string
	found := false
	for _, room := range r.Broadcast.PerRoom {
		if base.Metric == "latency" && room.Expected > 0 && (room.Latency == nil || room.Latency.Count == 0) {
			// The worst room of all: owed deliveries, none in time.
			return 0, room.Name, fmt.Sprintf("room %s was owed %d deliveries and got none in time", room.Name, room.Expected)
		}
		one := &result.Result{Histograms: map[string]*result.Histogram{result.Latency: room.Latency},
			Broadcast: &result.Broadcast{Expected: room.Expected, Delivered: room.Delivered}}
		v, reason := base.measure(one)
		if reason != "" {
			continue
		}
		if !found || (t.Op[0] == '<' && v > worst) || (t.Op[0] == '>' && v < worst) {
			worst, name, found = v, room.Name, true
		}
	}
	if !found {
		return 0, "", "no room has " + map[bool]string{true: "latency samples", false: "deliveries owed"}[base.Metric == "latency"]
	}
	return worst, name, ""
}

// measure returns t's metric in r, or why it cannot be measured.
func (t Threshold) measure(r *result.Result) (float64, string) {
	c := &r.Counters
	secs := r.MeasuredSeconds() // every repetition's window, for --count
	switch t.Metric {
	case "error_rate", "loss":
		if c.Sent == 0 {
			return 0, "no message was sent in the measured window"
		}
		if t.Metric == "loss" {
			return float64(c.Lost) / float64(c.Sent), ""
		}
		return float64(c.ErrorsTotal()) / float64(c.Sent), ""
	case "throughput":
		if secs <= 0 {
			return 0, "the measured window is empty"
		}
		return float64(c.Received) / secs, ""
	case "rate_ratio":
		planned := r.PlannedRate()
		if planned <= 0 || secs <= 0 {
			return 0, "no planned rate (closed loop, or an empty window)"
		}
		return float64(c.Sent) / secs / planned, ""
	case "delivery":
		if r.Broadcast == nil {
			return 0, "not a broadcast run"
		}
		if r.Broadcast.Expected == 0 {
			return 0, "no delivery was owed in the measured window"
		}
		return r.Broadcast.DeliveryRatio(), ""
	}
	h := r.Histograms[t.Metric]
	if t.Metric == "fanout" {
		if r.Broadcast == nil {
			return 0, "not a broadcast run"
		}
		h = r.Broadcast.FanOut
	}
	if h == nil || h.Count == 0 {
		return 0, "no " + t.Metric + " samples"
	}
	switch t.Stat {
	case "min":
		return float64(h.Min), ""
	case "max":
		return float64(h.Max), ""
	case "mean":
		return h.Mean, ""
	}
	pct, ok := t.Percentile()
	if !ok {
		return 0, "unknown statistic " + t.Stat
	}
	hh, err := h.HDR()
	if err != nil {
		return 0, "the " + t.Metric + " histogram cannot be decoded: " + err.Error()
	}
	return float64(hh.ValueAtPercentile(math.Min(pct, 100))), ""
}
