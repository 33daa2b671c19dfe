package reporters

import (
	"fmt"
	"strconv"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
)

// The repetitions section of the HTML report (run --count N): one row and
// one point per measured window, read through compare's metrics so that
// the figures are those 'sockbench compare' takes the median of.

// repView is the repetitions section: the table's cells, header first, and
// the charts over repetition number.
type repView struct {
	Rows   [][]string
	Charts []svgView
}

// metricSeries is one compare metric read from each of reps: x is the
// repetition number (1, 2, ...); a repetition without the figure is
// left out.
func metricSeries(name string, reps []result.Repetition, xs []float64) series {
	m := compare.MustLookup(name)
	s := series{Name: m.Label, Points: true}
	for i, rep := range reps {
		if v, ok := m.Value(rep); ok {
			s.X = append(s.X, xs[i])
			s.Y = append(s.Y, v)
		}
	}
	return s
}

// scaleDur converts series of ns to the unit that suits their largest
// value, and returns the unit's name.
func scaleDur(ss []series) string {
	peak := 0.0
	for _, s := range ss {
		for _, y := range s.Y {
			peak = max(peak, y)
		}
	}
	scale, unit := durUnit(peak)
	for _, s := range ss {
		for i := range s.Y {
			s.Y[i] /= scale
		}
	}
	return unit
}

// intTicks are ticks at whole numbers from 1 to n, at most about 12.
func intTicks(n int) []tick {
	step := max(1, (n+11)/12)
	var ts []tick
	for i := 1; i <= n; i += step {
		ts = append(ts, tick{V: float64(i), Label: strconv.Itoa(i)})
	}
	return ts
}

// repetitions is the section for a run of more than one repetition, nil
// otherwise.
func repetitions(r *result.Result) *repView {
	reps := r.Repetitions
	if len(reps) < 2 {
		return nil
	}
	xs := make([]float64, len(reps))
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	lat := []series{metricSeries("latency.p50", reps, xs), metricSeries("latency.p99", reps, xs), metricSeries("latency.p99.9", reps, xs)}
	unit := scaleDur(lat)
	const xl = "repetition (in the order run)"
	v := &repView{Charts: []svgView{
		lineChart{Title: "Latency per repetition", XLabel: xl, YLabel: "latency (" + unit + ")", XTicks: intTicks(len(reps)), Series: lat}.view(),
		lineChart{Title: "Throughput per repetition (replies per measured second)", XLabel: xl, YLabel: "throughput (msg/s)",
			XTicks: intTicks(len(reps)), Series: []series{metricSeries("throughput", reps, xs)}}.view(),
	}}
	names := []string{"latency.p50", "latency.p99", "latency.p99.9", "throughput", "error_rate"}
	if r.Broadcast != nil {
		names = append(names, "delivery_ratio", "fanout.p99")
	}
	head := []string{"repetition", "started", "window"}
	for _, n := range names {
		head = append(head, compare.MustLookup(n).Label)
	}
	v.Rows = append(v.Rows, head)
	for i, rep := range reps {
		row := []string{strconv.Itoa(i + 1), rep.StartedAt.Format("15:04:05"), fmt.Sprintf("%.1f s", rep.Seconds)}
		for _, n := range names {
			m := compare.MustLookup(n)
			cell := "-"
			if x, ok := m.Value(rep); ok {
				cell = compare.Format(m.Unit, x)
			}
			row = append(row, cell)
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}
