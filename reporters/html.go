package reporters

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sockbench/sockbench/internal/result"
)

// HTML writes the report as one self-contained HTML file: inline CSS, SVG
// charts drawn here, no script, no font, no request to any network. It
// holds the header (scenario, target, environment, measured window,
// thresholds and their verdicts, the harness's self-check), the percentile
// table and counters, and charts: latency and service time on the nines
// axis; latency p50/p99/max, send and receive rate against the plan, open
// connections, and errors and losses per second over time; for a broadcast
// run per-room delivery latency, delivery ratio and fan-out completion;
// for a run of several repetitions (run --count N) a table and charts of
// each repetition's latency p50/p99/p99.9 and throughput. Every string from the Result is escaped by html/template.
func HTML(w io.Writer, r *result.Result) error {
	page, err := newPage(r)
	if err != nil {
		return err
	}
	return htmlTemplate.ExecuteTemplate(w, "report", page)
}

// htmlPage is what the template renders; strings are formatted for people.
type htmlPage struct {
	Name      string
	Notices   []string // plain-words warnings shown at the top
	Header    []kv
	Phases    []kv
	Checks    []checkRow
	Hists     [][]string // name, count, min, p50, p90, p99, p99.9, p99.99, max, mean
	Counters  []kv
	Self      []kv
	Warnings  []string
	Charts    []svgView
	Broadcast *broadcastView
	Reps      *repView // run --count N: one row and point per repetition
	Rejected  []rejectedView
	Text      string // the text summary, for copying
}

type kv struct{ K, V string }

type checkRow struct {
	Pass                   bool
	Expr, Measured, Source string
}

type broadcastView struct {
	Summary []kv
	Rooms   [][]string // the per-room table's cells, header first
	Charts  []svgView
}

func newPage(r *result.Result) (*htmlPage, error) {
	p := r.Plan
	var spec struct {
		File        string `json:"file"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal(r.Scenario, &spec) // informative only; a result without it still renders
	pg := &htmlPage{Name: p.Name}

	if r.Interrupted {
		pg.Notices = append(pg.Notices, "Interrupted: a partial result, measured up to "+dur(r.Window.EndNs)+" after the start.")
	}
	if st := r.Stopped; st != nil {
		pg.Notices = append(pg.Notices, fmt.Sprintf("Stopped at %s: %s. A partial result, measured up to %s after the start.", dur(st.AtNs), st.Reason, dur(r.Window.EndNs)))
	}
	if a := r.Aborted; a != nil {
		pg.Notices = append(pg.Notices, fmt.Sprintf("Aborted (--abort-on-fail) at %s: threshold %s failed, %s%s.",
			dur(a.AtNs), a.Expr, Measured(result.ThresholdResult{Measured: a.Measured, Unit: a.Unit}), abortNote(a)))
	}
	if loss := lossText(r); loss != "" {
		pg.Notices = append(pg.Notices, "Loss: "+loss+".")
	}
	for _, w := range targetWarnings(r) {
		pg.Notices = append(pg.Notices, "Warning: "+w)
	}
	if r.Self.Saturated {
		pg.Notices = append(pg.Notices, "Saturated: the load generator, not the target, limited this run; read the figures as the harness's limits (see the self-check).")
	}
	if p.Mode == "closed" {
		pg.Notices = append(pg.Notices, "Closed loop: each send waits for a reply, so latency equals service time and hides queueing.")
	}
	for _, t := range r.Checks {
		if !t.Pass {
			pg.Notices = append(pg.Notices, "Threshold failed: "+t.Expr+" ("+Measured(t)+").")
		}
	}

	target := p.Target
	if p.Embedded {
		target += " (embedded reference server)"
	}
	mode := "open loop: latency from the intended send time (coordinated omission corrected)"
	if p.Mode == "closed" {
		mode = "closed loop"
	}
	e := r.Env
	win := r.Window
	pg.Header = []kv{
		{"scenario", p.Name + from(spec.File)},
		{"description", spec.Description},
		{"target", target},
		{"transport", p.Transport + framing(p.Framing) + ", engine " + p.Engine},
		{"mode", mode},
		{"started", r.StartedAt.Format(time.RFC3339)},
		{"measured window", fmt.Sprintf("%s, from %s to %s after the start; ramp (%s) and warm-up (%s) excluded; drain %s",
			dur(win.EndNs-win.StartNs), dur(win.StartNs), dur(win.EndNs), dur(win.RampEndNs), dur(p.WarmupNs), dur(win.DrainEndNs-win.EndNs))},
		{"environment", fmt.Sprintf("sockbench %s, %s %s/%s, host %s, %d CPUs, GOMAXPROCS %d, open files %d",
			e.Sockbench, e.Go, e.OS, e.Arch, e.Host, e.CPUs, e.GOMAXPROCS, e.OpenFiles)},
	}
	for _, ph := range r.Phases {
		pg.Phases = append(pg.Phases, kv{ph.Name, fmt.Sprintf("%s, %d conns, %s, %d B", dur(ph.EndNs-ph.StartNs), ph.Conns, phaseLoad(ph), ph.Size)})
	}
	checked := map[string]bool{}
	for _, t := range r.Checks {
		checked[t.Expr] = true
		pg.Checks = append(pg.Checks, checkRow{Pass: t.Pass, Expr: t.Expr, Measured: Measured(t), Source: t.Source})
	}
	for _, t := range r.Thresholds {
		if !checked[t] {
			pg.Checks = append(pg.Checks, checkRow{Expr: t, Measured: "not checked"})
		}
	}
	for _, n := range Histograms(r) {
		if n.Name == result.SendLag && p.Mode == "closed" {
			continue
		}
		pg.Hists = append(pg.Hists, histCells(n.Name, n.Hist))
	}

	pg.Counters = counterLines(r) // a broadcast run's accounting is in its own section
	pg.Rejected = rejectedViews(r)

	s := r.Self
	sat := "no: the figures describe the target"
	if s.Saturated {
		sat = "YES: the load generator limited this run"
	}
	pg.Self = []kv{{"saturated", sat}, {"cpu", fmt.Sprintf("%.0f%% of %d cores (user %s, system %s)", s.CPUPercent, e.CPUs, dur(s.CPUUserNs), dur(s.CPUSystemNs))}}
	if lag := r.Histograms[result.SendLag]; lag != nil && lag.Count > 0 && p.Mode != "closed" {
		pg.Self = append(pg.Self, kv{"send lag", fmt.Sprintf("p50 %s, p99 %s, max %s (how late sockbench sent against its schedule)", dur(lag.P50), dur(lag.P99), dur(lag.Max))})
	}
	if s.PeakConns > 0 {
		pg.Self = append(pg.Self, kv{"memory", fmt.Sprintf("rss %s at start, %s with %d conns open: %s per connection",
			bytesIEC(s.RSSStartBytes), bytesIEC(s.RSSPeakBytes), s.PeakConns, bytesIEC(s.RSSPerConnBytes))})
	}
	pg.Warnings = s.Warnings

	charts, err := runCharts(r)
	if err != nil {
		return nil, err
	}
	pg.Charts = charts
	if r.Broadcast != nil {
		if pg.Broadcast, err = broadcastCharts(r.Broadcast); err != nil {
			return nil, err
		}
	}
	pg.Reps = repetitions(r)
	var text strings.Builder
	if err := Text(&text, r); err != nil {
		return nil, err
	}
	pg.Text = text.String()
	return pg, nil
}

func from(file string) string {
	if file == "" {
		return ""
	}
	return " (" + file + ")"
}

// histCells is one row of the percentile table.
func histCells(name string, h *result.Histogram) []string {
	if h.Count == 0 {
		return []string{name, "0", "-", "-", "-", "-", "-", "-", "-", "-"}
	}
	return []string{name, fmt.Sprint(h.Count), dur(h.Min), dur(h.P50), dur(h.P90), dur(h.P99), dur(h.P999), dur(h.P9999), dur(h.Max), dur(int64(h.Mean))}
}

// durUnit picks the unit in which a chart shows durations up to maxNs.
func durUnit(maxNs float64) (scale float64, name string) {
	switch {
	case maxNs < 1e3:
		return 1, "ns"
	case maxNs < 1e6:
		return 1e3, "us"
	case maxNs < 1e9:
		return 1e6, "ms"
	}
	return 1e9, "s"
}

// curve is a percentile distribution on the nines axis: x is
// log10(1/(1-p)), y the value in ns. The 100th percentile (infinite x) is
// left out, as HdrHistogram's plotter does.
func curve(h *result.Histogram) (xs, ys []float64, err error) {
	d, err := h.HDR()
	if err != nil {
		return nil, nil, err
	}
	if d.TotalCount() == 0 {
		return nil, nil, nil
	}
	var prev hdr.Bracket
	for _, b := range d.CumulativeDistributionWithTicks(5) {
		if b.Quantile >= 100 || (b.Quantile == prev.Quantile && b.ValueAt == prev.ValueAt) {
			continue
		}
		prev = b
		xs = append(xs, ninesX(b.Quantile))
		ys = append(ys, float64(b.ValueAt))
	}
	return xs, ys, nil
}

// ninesChart draws named histograms as percentile curves on the nines axis.
func ninesChart(title, what string, hs []Named) (svgView, error) {
	var ss []series
	maxX, maxY := 0.0, 0.0
	for _, n := range hs {
		xs, ys, err := curve(n.Hist)
		if err != nil {
			return svgView{}, fmt.Errorf("%s: %w", n.Name, err)
		}
		for i := range xs {
			maxX, maxY = max(maxX, xs[i]), max(maxY, ys[i])
		}
		ss = append(ss, series{Name: n.Name, X: xs, Y: ys})
	}
	scale, unit := durUnit(maxY)
	for _, s := range ss {
		for i := range s.Y {
			s.Y[i] /= scale
		}
	}
	return lineChart{
		Title: title, XLabel: "percentile (nines axis: x = 1/(1-p), log scale)", YLabel: what + " (" + unit + ")",
		XTicks: ninesTicks(maxX), Series: ss,
	}.view(), nil
}

// runCharts are the charts of every run: the distribution and the time series.
func runCharts(r *result.Result) ([]svgView, error) {
	var dist []Named
	latency := "latency (from the intended send)"
	if r.Broadcast != nil {
		latency = "latency (publish to each delivery)"
	}
	if h := r.Histograms[result.Latency]; h != nil {
		dist = append(dist, Named{latency, h})
	}
	if h := r.Histograms[result.ServiceTime]; h != nil {
		dist = append(dist, Named{"service time (from the actual send)", h})
	}
	nines, err := ninesChart("Latency distribution", "latency", dist)
	if err != nil {
		return nil, err
	}
	s := seriesOf(r.Intervals)
	lat := []series{{Name: "p50", X: s.t, Y: s.p50}, {Name: "p99", X: s.t, Y: s.p99}, {Name: "max", X: s.t, Y: s.pmax}}
	unit := scaleDur(lat)
	b := &band{From: float64(r.Window.StartNs) / 1e9, To: float64(r.Window.EndNs) / 1e9, Label: "measured"}
	rates := []series{{Name: "send rate", X: s.t, Y: s.send}, {Name: "receive rate", X: s.t, Y: s.recv}}
	if r.Plan.Mode != "closed" {
		rates = append(rates, series{Name: "planned rate", X: s.t, Y: s.plan, Dash: true})
	}
	return []svgView{
		nines,
		lineChart{Title: "Latency over time (replies received in each second)", XLabel: timeAxis, YLabel: "latency (" + unit + ")", Band: b,
			Series: lat}.view(),
		lineChart{Title: "Send and receive rate against the plan", XLabel: timeAxis, YLabel: "rate (msg/s)", Band: b, Series: rates}.view(),
		lineChart{Title: "Open connections", XLabel: timeAxis, YLabel: "connections", Band: b,
			Series: []series{{Name: "open connections", X: s.t, Y: s.conns}}}.view(),
		lineChart{Title: "Errors and losses per second", XLabel: timeAxis, YLabel: "count per interval", Band: b,
			Series: []series{{Name: "errors", X: s.t, Y: s.errs}, {Name: "lost messages", X: s.t, Y: s.lost}}}.view(),
	}, nil
}

// timeAxis is the x label of the charts over time.
const timeAxis = "time since start (s)"

// intervalSeries are a run's interval figures as chart data: t in s since
// the start, latencies in ns, rates in msg/s, counts per interval.
type intervalSeries struct {
	t, p50, p99, pmax, send, recv, plan, conns, errs, lost []float64
}

func seriesOf(ivs []result.Interval) intervalSeries {
	n := len(ivs)
	s := intervalSeries{t: make([]float64, n), p50: make([]float64, n), p99: make([]float64, n), pmax: make([]float64, n),
		send: make([]float64, n), recv: make([]float64, n), plan: make([]float64, n),
		conns: make([]float64, n), errs: make([]float64, n), lost: make([]float64, n)}
	for i, iv := range ivs {
		s.t[i] = float64(iv.TNs) / 1e9
		s.p50[i], s.p99[i], s.pmax[i] = float64(iv.P50Ns), float64(iv.P99Ns), float64(iv.MaxNs)
		s.send[i], s.recv[i], s.plan[i] = iv.SendRate, iv.RecvRate, iv.PlannedRate
		s.conns[i], s.errs[i], s.lost[i] = float64(iv.OpenConns), float64(iv.Errors), float64(iv.Lost)
	}
	return s
}

// broadcastCharts is the broadcast section: accounting, the per-room table,
// per-room latency curves, delivery ratio per room and fan-out completion.
func broadcastCharts(bc *result.Broadcast) (*broadcastView, error) {
	v := &broadcastView{Summary: broadcastSummary(bc)}
	v.Rooms = roomRows(bc)
	var lat []Named
	var ratio []bar
	for _, room := range bc.PerRoom {
		if room.Latency != nil {
			lat = append(lat, Named{room.Name, room.Latency})
		}
		if room.Expected > 0 { // a room owed nothing has no ratio to draw
			ratio = append(ratio, bar{Label: room.Name, Value: roomRatio(room)})
		}
	}
	perRoom, err := ninesChart("Delivery latency per room (publish to each delivery)", "latency", lat)
	if err != nil {
		return nil, err
	}
	v.Charts = append(v.Charts, perRoom, barChart{
		Title: "Delivery ratio per room (delivered / expected)", XLabel: "delivered (% of expected)", Max: 1,
		Format: percent, Ticks: func(x float64) string { return num(100*x) + "%" }, Bars: ratio,
	}.view())
	if bc.FanOut != nil {
		fan, err := ninesChart("Fan-out completion: publish to its last owed delivery", "fan-out completion", []Named{{"fan-out completion", bc.FanOut}})
		if err != nil {
			return nil, err
		}
		v.Charts = append(v.Charts, fan)
	}
	return v, nil
}

// htmlTemplate holds the three pages ("report": one run; "overlay": two
// runs overlaid; "capacity": a capacity search's steps) and their parts:
// "style", "run" (one run's sections, which the other pages repeat per run
// or step), "table" (cells, header row first) and "svg" (a chart).
var htmlTemplate = template.Must(template.Must(template.New("report").Parse(reportHTML)).Parse(overlayHTML + capacityHTML))

const reportHTML = `{{template "head" (print "sockbench report: " .Name)}}
{{template "run" .}}
<h2>Text summary</h2>
<pre>{{.Text}}</pre>
</body>
</html>
{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}}</title>
{{template "style"}}
</head>
<body>
<h1>{{.}}</h1>
{{end}}
{{define "style"}}<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 800px; padding: 0 12px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 6px 0; } td, th { padding: 2px 10px 2px 0; vertical-align: top; text-align: left; }
th { font-weight: 600; color: #555; white-space: nowrap; }
table.num td, table.num th { text-align: right; font-variant-numeric: tabular-nums; padding-left: 10px; }
table.num td:first-child, table.num th:first-child { text-align: left; padding-left: 0; }
.wide { overflow-x: auto; }
table.rooms { font-size: 12px; } table.rooms td, table.rooms th { white-space: nowrap; padding-left: 6px; }
.notice { background: #fff3cd; border: 1px solid #e0c060; padding: 6px 10px; margin: 8px 0; }
.pass { color: #17692c; font-weight: 600; } .fail { color: #b00020; font-weight: 600; }
tr.mark td { background: #f2f6fa; } table.num td.verdict { text-align: left; min-width: 14em; }
details { margin: 10px 0; border-left: 3px solid #ddd; padding-left: 10px; } summary { cursor: pointer; font-weight: 600; }
svg.chart { display: block; margin: 14px 0; background: #fff; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #333; }
svg.chart text.title { font-size: 13px; font-weight: 600; }
svg.chart text.label { font-size: 12px; fill: #555; }
svg.chart text.bandlabel { fill: #888; }
svg.chart line.grid { stroke: #e6e6e6; } svg.chart line.axis { stroke: #444; }
svg.chart rect.band { fill: #f2f6fa; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
</style>{{end}}
{{define "run"}}{{range .Notices}}<div class="notice">{{.}}</div>
{{end}}
<table>
{{range .Header}}{{if .V}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}
{{end}}{{range .Phases}}<tr><th>phase {{.K}}</th><td>{{.V}}</td></tr>
{{end}}</table>

<h2>Thresholds</h2>
{{if .Checks}}<table>
<tr><th>verdict</th><th>threshold</th><th>measured</th><th>declared in</th></tr>
{{range .Checks}}<tr><td>{{if .Pass}}<span class="pass">pass</span>{{else}}<span class="fail">FAIL</span>{{end}}</td><td>{{.Expr}}</td><td>{{.Measured}}</td><td>{{.Source}}</td></tr>
{{end}}</table>{{else}}<p>No thresholds were set.</p>{{end}}

<h2>Harness self-check</h2>
<table>
{{range .Self}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>
{{end}}{{range .Warnings}}<tr><th>note</th><td>{{.}}</td></tr>
{{end}}</table>

<h2>Latency (measured window)</h2>
<table class="num">
<tr><th>histogram</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>mean</th></tr>
{{range .Hists}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<table>
{{range .Counters}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>
{{end}}</table>
{{with .Rejected}}
<h2>Rejected</h2>
<p>What the target sent that sockbench could not use (the first {{len .}} kept): each message's first bytes, in hex and as text.</p>
{{range .}}<p>{{.Head}}</p>
<pre>{{range .Dump}}{{.}}
{{end}}</pre>
{{end}}{{end}}
{{with .Reps}}
<h2>Repetitions</h2>
<p>Each repetition is a measured window of its own, with fresh connections; the figures above merge them all.</p>
{{template "table" .Rows}}
{{range .Charts}}{{template "svg" .}}{{end}}
{{end}}
<h2>Charts</h2>
{{range .Charts}}{{template "svg" .}}{{end}}
{{with .Broadcast}}
<h2>Broadcast</h2>
<table>
{{range .Summary}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>
{{end}}</table>
<div class="wide"><table class="num rooms">
{{range $i, $row := .Rooms}}<tr>{{range $row}}{{if eq $i 0}}<th>{{.}}</th>{{else}}<td>{{.}}</td>{{end}}{{end}}</tr>
{{end}}</table></div>
{{range .Charts}}{{template "svg" .}}{{end}}
{{end}}{{end}}
{{define "table"}}<div class="wide"><table class="num">
{{range $i, $row := .}}<tr>{{range $row}}{{if eq $i 0}}<th>{{.}}</th>{{else}}<td>{{.}}</td>{{end}}{{end}}</tr>
{{end}}</table></div>{{end}}
{{define "svg"}}<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
{{range .Rects}}<rect x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="{{printf "%.1f" .W}}" height="{{printf "%.1f" .H}}"{{with .Class}} class="{{.}}"{{end}}{{with .Fill}} fill="{{.}}"{{end}}/>
{{end}}{{range .Lines}}<line x1="{{printf "%.1f" .X1}}" y1="{{printf "%.1f" .Y1}}" x2="{{printf "%.1f" .X2}}" y2="{{printf "%.1f" .Y2}}" class="{{.Class}}"/>
{{end}}{{range .Polys}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.6"{{if .Dash}} stroke-dasharray="5 4"{{end}} points="{{.Points}}"><desc>{{.Name}}</desc></polyline>
{{end}}{{range .Texts}}<text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" text-anchor="{{.Anchor}}"{{with .Class}} class="{{.}}"{{end}}{{if .Rotate}} transform="rotate(-90 {{printf "%.1f" .X}} {{printf "%.1f" .Y}})"{{end}}>{{.S}}</text>
{{end}}</svg>
{{end}}`

// abortNote says whether an abort's verdict was final, in the run's words.
func abortNote(a *result.Abort) string {
	if a.Reason == "" {
		return ""
	}
	return "; " + a.Reason
}
