package reporters

import (
	"io"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
)

// Labelled is a result and the name a report shows it under: a file name,
// a --label, or "reference" and "target".
type Labelled struct {
	Label  string
	Result *result.Result
}

// HTMLOverlay writes one self-contained HTML report of two runs overlaid:
// what ran on each side, the comparison table t (compare.Compare of the
// two, shown as compare's Text shows it, with its notes), charts with both
// runs in each (latency and service time on the nines axis, latency p50
// and p99 over time, send and receive rate over time, and for two
// broadcast runs fan-out completion), then each run's own report in a
// collapsed section. Every string from the results is escaped by
// html/template.
func HTMLOverlay(w io.Writer, title string, base, next Labelled, t *compare.Table) error {
	pg := &overlayPage{Name: title, Compare: t.Cells(), Footnotes: t.Footnotes()}
	sides := []Labelled{base, next}
	var pages []*htmlPage
	for _, s := range sides {
		p, err := newPage(s.Result)
		if err != nil {
			return err
		}
		pages = append(pages, p)
		pg.Runs = append(pg.Runs, overlayRun{Label: s.Label, Page: p})
		for _, n := range p.Notices {
			pg.Notices = append(pg.Notices, s.Label+": "+n)
		}
	}
	pg.Header = [][]string{{"", base.Label, next.Label}}
	for i, f := range pages[0].Header { // newPage lists the same fields in the same order for every result
		if b := pages[1].Header[i]; f.V != "" || b.V != "" {
			pg.Header = append(pg.Header, []string{f.K, f.V, b.V})
		}
	}
	charts, err := overlayCharts(sides)
	if err != nil {
		return err
	}
	pg.Charts = charts
	return htmlTemplate.ExecuteTemplate(w, "overlay", pg)
}

// overlayPage is what the "overlay" template renders.
type overlayPage struct {
	Name      string
	Notices   []string   // each run's, prefixed with its label
	Header    [][]string // field, base, new; the labels first
	Compare   [][]string // the comparison table, header first
	Footnotes []string
	Charts    []svgView
	Runs      []overlayRun
}

type overlayRun struct {
	Label string
	Page  *htmlPage
}

// overlayCharts are the charts of two runs, each with both runs' series,
// named "LABEL: what".
func overlayCharts(sides []Labelled) ([]svgView, error) {
	var dist, fan []Named
	var lat, rates []series
	for _, s := range sides {
		r := s.Result
		if h := r.Histograms[result.Latency]; h != nil {
			dist = append(dist, Named{s.Label + ": latency", h})
		}
		if b := r.Broadcast; b != nil && b.FanOut != nil {
			fan = append(fan, Named{s.Label + ": fan-out completion", b.FanOut})
		}
		is := seriesOf(r.Intervals)
		lat = append(lat, series{Name: s.Label + ": p99", X: is.t, Y: is.p99}, series{Name: s.Label + ": p50", X: is.t, Y: is.p50, Dash: true})
		rates = append(rates, series{Name: s.Label + ": receive rate", X: is.t, Y: is.recv}, series{Name: s.Label + ": send rate", X: is.t, Y: is.send, Dash: true})
	}
	for _, s := range sides { // after both latencies, so that each run keeps a colour pair apart
		if h := s.Result.Histograms[result.ServiceTime]; h != nil {
			dist = append(dist, Named{s.Label + ": service time", h})
		}
	}
	nines, err := ninesChart("Latency distribution of both runs", "latency", dist)
	if err != nil {
		return nil, err
	}
	unit := scaleDur(lat)
	charts := []svgView{
		nines,
		lineChart{Title: "Latency over time, both runs (p99 solid, p50 dashed)", XLabel: timeAxis, YLabel: "latency (" + unit + ")", Series: lat}.view(),
		lineChart{Title: "Receive (solid) and send (dashed) rate, both runs", XLabel: timeAxis, YLabel: "rate (msg/s)", Series: rates}.view(),
	}
	if len(fan) == 2 {
		c, err := ninesChart("Fan-out completion of both runs: publish to its last owed delivery", "fan-out completion", fan)
		if err != nil {
			return nil, err
		}
		charts = append(charts, c)
	}
	return charts, nil
}

const overlayHTML = `{{define "overlay"}}{{template "head" (print "sockbench comparison: " .Name)}}
{{range .Notices}}<div class="notice">{{.}}</div>
{{end}}
{{template "table" .Header}}

<h2>Comparison</h2>
{{template "table" .Compare}}
<ul>
{{range .Footnotes}}<li>{{.}}</li>
{{end}}</ul>

<h2>Both runs overlaid</h2>
{{range .Charts}}{{template "svg" .}}{{end}}
{{range .Runs}}
<h2>{{.Label}}</h2>
<details><summary>the report of {{.Label}} alone</summary>
{{template "run" .Page}}
<h2>Text summary</h2>
<pre>{{.Page.Text}}</pre>
</details>
{{end}}
</body>
</html>
{{end}}`
