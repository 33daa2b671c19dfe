package reporters

import (
	"fmt"
	"io"
	"strconv"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
)

// CapacityStep is one step of a capacity search (run --find-max conns) as
// the report shows it.
type CapacityStep struct {
	Conns   int // the step's connections (subscribers, for broadcast)
	Result  *result.Result
	Verdict string // "pass", or what broke the step, in words
	Passed  bool
}

// Capacity is a capacity search as the report shows it; cmd/sockbench
// builds it from the search's steps.
type Capacity struct {
	Steps []CapacityStep
	// LastPass and Breaking index Steps: the last step that passed and the
	// first that broke (-1: none).
	LastPass, Breaking int
	Until              []string // the conditions that break a step
	Stop               string   // why the search stopped
	Conclusion         string   // the capacity in one line, as the text table ends
}

// HTMLCapacity writes one self-contained HTML report of a capacity search:
// what ran, the table of steps (the last passing and the breaking step
// marked, each linked to its section), charts over the steps' connections
// (latency p50 and p99, and fan-out p99 for broadcast; the share not
// delivered; throughput), and a section per step with that step's own
// report, collapsed. Every string from the results is escaped by
// html/template.
func HTMLCapacity(w io.Writer, c *Capacity) error {
	if len(c.Steps) == 0 {
		return fmt.Errorf("capacity report: no step finished (%s)", c.Stop)
	}
	pg := &capacityPage{Conclusion: c.Conclusion, Stop: c.Stop, Until: c.Until}
	broadcast := c.Steps[0].Result.Broadcast != nil
	names := []string{"throughput", "latency.p50", "latency.p99", "latency.p99.9"}
	if broadcast {
		names = append(names, "fanout.p99", "delivery_ratio")
	} else {
		names = append(names, "loss")
	}
	names = append(names, "error_rate")
	head := []string{"step", "conns", "verdict"}
	for _, n := range names {
		head = append(head, compare.MustLookup(n).Label)
	}
	pg.Head = append(head, "cpu")
	xs := make([]float64, len(c.Steps))
	reps := make([]result.Repetition, len(c.Steps))
	for i, st := range c.Steps {
		xs[i], reps[i] = float64(st.Conns), result.RepetitionOf(st.Result)
		page, err := newPage(st.Result)
		if err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		if i == 0 {
			pg.Name = page.Name
			pg.Header = page.Header
		}
		row := capacityRow{N: i + 1, Conns: st.Conns, Passed: st.Passed, Verdict: st.Verdict, Page: page}
		switch i {
		case c.LastPass:
			row.Mark = "the last pass"
		case c.Breaking:
			row.Mark = "the break"
		}
		for _, n := range names {
			m := compare.MustLookup(n)
			cell := "-"
			if v, ok := m.Value(reps[i]); ok {
				cell = compare.Format(m.Unit, v)
			}
			row.Cells = append(row.Cells, cell)
		}
		row.Cells = append(row.Cells, fmt.Sprintf("%.0f%%", st.Result.Self.CPUPercent))
		pg.Steps = append(pg.Steps, row)
	}
	pg.Charts = capacityCharts(c, reps, xs, broadcast)
	return htmlTemplate.ExecuteTemplate(w, "capacity", pg)
}

// capacityCharts draws the steps' figures over their connections, with the
// span from the last passing step to the breaking one shaded.
func capacityCharts(c *Capacity, reps []result.Repetition, xs []float64, broadcast bool) []svgView {
	var b *band
	switch {
	case c.LastPass >= 0 && c.Breaking >= 0:
		b = &band{From: xs[c.LastPass], To: xs[c.Breaking], Label: "passes | breaks"}
	case c.Breaking >= 0:
		b = &band{From: 0, To: xs[c.Breaking], Label: "breaks"}
	}
	const xl = "connections in the step (subscribers, for broadcast)"
	lat := []series{metricSeries("latency.p50", reps, xs), metricSeries("latency.p99", reps, xs)}
	short := series{Name: "lost (% of sent)", Points: true}
	if broadcast {
		lat = append(lat, metricSeries("fanout.p99", reps, xs))
		short.Name = "not delivered (% of owed deliveries)"
	}
	for i, rep := range reps {
		v, ok := compare.MustLookup("loss").Value(rep)
		if broadcast {
			v, ok = compare.MustLookup("delivery_ratio").Value(rep)
			v = 1 - v
		}
		if ok {
			short.X = append(short.X, xs[i])
			short.Y = append(short.Y, 100*v)
		}
	}
	unit := scaleDur(lat)
	return []svgView{
		lineChart{Title: "Latency per step", XLabel: xl, YLabel: "latency (" + unit + ")", Band: b, Series: lat}.view(),
		lineChart{Title: "Delivery per step: the share that did not arrive", XLabel: xl, YLabel: "not delivered (%)", Band: b, Series: []series{short}}.view(),
		lineChart{Title: "Throughput per step (replies per measured second)", XLabel: xl, YLabel: "throughput (msg/s)", Band: b,
			Series: []series{metricSeries("throughput", reps, xs)}}.view(),
	}
}

// capacityPage is what the "capacity" template renders.
type capacityPage struct {
	Name       string
	Header     []kv // the first step's: scenario, target, environment, ...
	Until      []string
	Stop       string
	Conclusion string
	Head       []string // the steps table's column heads
	Steps      []capacityRow
	Charts     []svgView
}

type capacityRow struct {
	N, Conns int
	Cells    []string // the figures after the verdict, cpu last
	Passed   bool
	Verdict  string
	Mark     string // "the last pass", "the break", or ""
	Page     *htmlPage
}

// ID is the row's anchor in the page.
func (r capacityRow) ID() string { return "step-" + strconv.Itoa(r.N) }

const capacityHTML = `{{define "capacity"}}{{template "head" (print "sockbench capacity search: " .Name)}}
<div class="notice">{{.Conclusion}}</div>
<table>
{{range .Header}}{{if and .V (ne .K "measured window") (ne .K "started")}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}
{{end}}<tr><th>a step breaks when</th><td>{{range $i, $u := .Until}}{{if $i}} or {{end}}{{$u}}{{end}}</td></tr>
<tr><th>the search stopped</th><td>{{.Stop}}</td></tr>
</table>

<h2>Steps</h2>
<div class="wide"><table class="num">
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Steps}}<tr{{if .Mark}} class="mark"{{end}}><td><a href="#{{.ID}}">{{.N}}</a></td><td>{{.Conns}}</td><td class="verdict">{{if .Passed}}<span class="pass">pass</span>{{else}}<span class="fail">{{.Verdict}}</span>{{end}}{{with .Mark}} ({{.}}){{end}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table></div>

<h2>Charts</h2>
{{range .Charts}}{{template "svg" .}}{{end}}
{{range .Steps}}
<h2 id="{{.ID}}">Step {{.N}}: {{.Conns}} conns, {{if .Passed}}pass{{else}}{{.Verdict}}{{end}}{{with .Mark}} ({{.}}){{end}}</h2>
<details><summary>the report of step {{.N}}</summary>
{{template "run" .Page}}
</details>
{{end}}
</body>
</html>
{{end}}`
