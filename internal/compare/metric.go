// Package compare holds the comparison of two sockbench results: the
// metrics compared, the statistics that tell a change from noise (the
// Mann-Whitney U test over repetitions, as benchstat does it, from
// golang.org/x/perf/benchmath), the --fail-on limits, and the table in text
// and Markdown.
package compare

import (
	"github.com/sockbench/sockbench/internal/result"
)

// Units of a metric's values.
const (
	UnitNs    = "ns"    // nanoseconds
	UnitRate  = "msg/s" // messages per second
	UnitRatio = "ratio" // a fraction, shown as a percentage
)

// Metric is one figure compared between two results, measured once per
// repetition.
type Metric struct {
	// Name is how --fail-on names it: "latency.p99", "throughput", ...
	Name string
	// Label is the table's row label.
	Label string
	Unit  string
	// HigherIsBetter is true for throughput and delivery ratio: a fall is
	// the regression. For the others a rise is.
	HigherIsBetter bool
	// Broadcast metrics appear only when both results are broadcast runs.
	Broadcast bool
	// value reads the metric from one repetition; ok is false when the
	// repetition has no such figure (no samples, nothing sent).
	value func(rep result.Repetition) (v float64, ok bool)
}

// Value reads the metric from one repetition (result.RepetitionOf makes
// one of a single run); ok is false when it has no such figure.
func (m Metric) Value(rep result.Repetition) (v float64, ok bool) { return m.value(rep) }

// MustLookup is Lookup for names known to exist; it panics on a typo.
func MustLookup(name string) Metric {
	m, ok := Lookup(name)
	if !ok {
		panic("compare: no metric " + name)
	}
	return m
}

func hist(name string, stat func(result.Summary) int64) func(result.Repetition) (float64, bool) {
	return func(rep result.Repetition) (float64, bool) {
		s, ok := rep.Histograms[name]
		if !ok || s.Count == 0 {
			return 0, false
		}
		return float64(stat(s)), true
	}
}

func p50(s result.Summary) int64  { return s.P50 }
func p90(s result.Summary) int64  { return s.P90 }
func p99(s result.Summary) int64  { return s.P99 }
func p999(s result.Summary) int64 { return s.P999 }
func pmax(s result.Summary) int64 { return s.Max }

// Metrics are the compared metrics, in table order.
func Metrics() []Metric {
	return []Metric{
		{Name: "latency.p50", Label: "latency p50", Unit: UnitNs, value: hist(result.Latency, p50)},
		{Name: "latency.p90", Label: "latency p90", Unit: UnitNs, value: hist(result.Latency, p90)},
		{Name: "latency.p99", Label: "latency p99", Unit: UnitNs, value: hist(result.Latency, p99)},
		{Name: "latency.p99.9", Label: "latency p99.9", Unit: UnitNs, value: hist(result.Latency, p999)},
		{Name: "latency.max", Label: "latency max", Unit: UnitNs, value: hist(result.Latency, pmax)},
		{Name: "service_time.p50", Label: "service_time p50", Unit: UnitNs, value: hist(result.ServiceTime, p50)},
		{Name: "service_time.p99", Label: "service_time p99", Unit: UnitNs, value: hist(result.ServiceTime, p99)},
		{Name: "send_lag.p99", Label: "send_lag p99", Unit: UnitNs, value: hist(result.SendLag, p99)},
		{Name: "connect.p99", Label: "connect p99", Unit: UnitNs, value: hist(result.Connect, p99)},
		{Name: "throughput", Label: "throughput", Unit: UnitRate, HigherIsBetter: true, value: throughput},
		{Name: "error_rate", Label: "error rate", Unit: UnitRatio, value: errorRate},
		{Name: "loss", Label: "loss", Unit: UnitRatio, value: loss},
		{Name: "reordered", Label: "reordered", Unit: UnitRatio, value: reordered},
		{Name: "delivery_ratio", Label: "delivery ratio", Unit: UnitRatio, HigherIsBetter: true, Broadcast: true, value: deliveryRatio},
		{Name: "fanout.p99", Label: "fanout p99", Unit: UnitNs, Broadcast: true, value: fanoutP99},
	}
}

// throughput is replies received per measured second, msg/s.
func throughput(rep result.Repetition) (float64, bool) {
	if rep.Seconds <= 0 {
		return 0, false
	}
	return float64(rep.Counters.Received) / rep.Seconds, true
}

// errorRate is errors of every class over measured messages sent.
func errorRate(rep result.Repetition) (float64, bool) {
	if rep.Counters.Sent == 0 {
		return 0, false
	}
	return float64(rep.Counters.ErrorsTotal()) / float64(rep.Counters.Sent), true
}

// loss is lost messages over measured messages sent.
func loss(rep result.Repetition) (float64, bool) {
	if rep.Counters.Sent == 0 {
		return 0, false
	}
	return float64(rep.Counters.Lost) / float64(rep.Counters.Sent), true
}

// reordered is out-of-order replies over replies received.
func reordered(rep result.Repetition) (float64, bool) {
	if rep.Counters.Received == 0 {
		return 0, false
	}
	return float64(rep.Counters.Reordered) / float64(rep.Counters.Received), true
}

func deliveryRatio(rep result.Repetition) (float64, bool) {
	b := rep.Broadcast
	if b == nil {
		return 0, false
	}
	if b.Expected == 0 {
		return 1, true
	}
	return float64(b.Delivered) / float64(b.Expected), true
}

func fanoutP99(rep result.Repetition) (float64, bool) {
	if rep.Broadcast == nil || rep.Broadcast.FanOut.Count == 0 {
		return 0, false
	}
	return float64(rep.Broadcast.FanOut.P99), true
}

// aliases are short names --fail-on accepts besides the metric names: a
// bare stat is a latency stat, as in thresholds.
var aliases = map[string]string{
	"p50": "latency.p50", "p90": "latency.p90", "p99": "latency.p99", "p99.9": "latency.p99.9", "max": "latency.max",
	"error-rate": "error_rate", "errors": "error_rate", "loss_ratio": "loss", "delivery": "delivery_ratio",
	"msgs/s": "throughput", "msg/s": "throughput", "rate": "throughput",
}

// Lookup finds a metric by name or alias.
func Lookup(name string) (Metric, bool) {
	if a, ok := aliases[name]; ok {
		name = a
	}
	for _, m := range Metrics() {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}
