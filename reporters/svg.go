package reporters

import (
	"math"
	"strconv"
	"strings"
)

// A small SVG chart helper for the HTML report: line charts (axes with
// ticks and unit labels, polyline series, a shaded band, a legend) and
// horizontal bar charts. It computes geometry only; the html template
// "svg" draws a view, so every string (room names, phase names) is
// escaped by html/template.

// Chart geometry in SVG user units (CSS pixels at the default size).
const (
	chartW      = 760
	plotLeft    = 72  // room for y tick labels and the rotated y label
	plotRight   = 36  // right margin: room for the last x tick label
	plotTop     = 28  // room for the title
	plotH       = 210 // height of the plotting area
	legendRowH  = 16
	legendItemW = 210
)

// palette colours series in order; a colour-blind-safe set (Okabe-Ito, plus grey).
var palette = []string{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442", "#999999"}

// lineChart is a chart of polylines on linear axes. Callers transform data
// (for example to the nines axis) before handing it over.
type lineChart struct {
	Title  string
	XLabel string // with its unit, e.g. "time since start (s)"
	YLabel string // with its unit, e.g. "latency (ms)"
	// XTicks, if set, are the x ticks (and the x range spans them and the
	// data); nil means round linear ticks over the data.
	XTicks []tick
	Band   *band // shaded x range, e.g. the measured window; optional
	Series []series
}

type tick struct {
	V     float64
	Label string
}

type band struct {
	From, To float64
	Label    string
}

type series struct {
	Name   string
	X, Y   []float64
	Dash   bool // a dashed line: a plan or reference, not a measurement
	Points bool // a marker at each point: few points, each a measurement
}

// svgView is what the "svg" template draws.
type svgView struct {
	Title string
	W, H  int
	Rects []svgRect
	Lines []svgLine
	Texts []svgText
	Polys []svgPoly
}

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Class      string
}

type svgLine struct {
	X1, Y1, X2, Y2 float64
	Class          string
}

type svgText struct {
	X, Y   float64
	Anchor string // start, middle, end
	Class  string
	Rotate bool // -90 degrees about (X, Y): a y-axis label
	S      string
}

type svgPoly struct {
	Name   string
	Points string
	Color  string
	Dash   bool
}

// view lays out c.
func (c lineChart) view() svgView {
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymax := 0.0
	for _, s := range c.Series {
		for i := range s.X {
			if !finite(s.X[i]) || !finite(s.Y[i]) || s.Y[i] > math.MaxFloat64/2 {
				continue // not placeable; the scale is made for the rest
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymax = math.Max(ymax, s.Y[i])
		}
	}
	for _, t := range c.XTicks {
		xmin, xmax = math.Min(xmin, t.V), math.Max(xmax, t.V)
	}
	if math.IsInf(xmin, 1) { // no data at all
		xmin, xmax = 0, 1
	}
	xmin = math.Min(xmin, 0) // time since start and the nines axis begin at 0
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	yticks := niceTicks(0, ymax*1.05)
	ymax = math.Max(ymax*1.05, yticks[len(yticks)-1].V)
	xticks := c.XTicks
	if xticks == nil {
		xticks = niceTicks(xmin, xmax)
	}

	plotW := float64(chartW - plotLeft - plotRight)
	top, bottom := float64(plotTop), float64(plotTop+plotH)
	px := func(x float64) float64 { return plotLeft + (x-xmin)/(xmax-xmin)*plotW }
	py := func(y float64) float64 { return bottom - y/ymax*plotH }

	perRow := max(1, int(plotW)/legendItemW)
	rows := (len(c.Series) + perRow - 1) / perRow
	v := svgView{Title: c.Title, W: chartW, H: plotTop + plotH + 44 + rows*legendRowH}
	v.Texts = append(v.Texts, svgText{X: plotLeft, Y: 18, Anchor: "start", Class: "title", S: c.Title})
	if b := c.Band; b != nil && b.To > b.From {
		x1, x2 := px(math.Max(b.From, xmin)), px(math.Min(b.To, xmax))
		v.Rects = append(v.Rects, svgRect{X: x1, Y: top, W: math.Max(x2-x1, 0), H: plotH, Class: "band"})
		v.Texts = append(v.Texts, svgText{X: x1 + 4, Y: top + 12, Anchor: "start", Class: "bandlabel", S: b.Label})
	}
	for _, t := range yticks {
		y := py(t.V)
		v.Lines = append(v.Lines, svgLine{X1: plotLeft, Y1: y, X2: plotLeft + plotW, Y2: y, Class: "grid"})
		v.Texts = append(v.Texts, svgText{X: plotLeft - 6, Y: y + 4, Anchor: "end", S: t.Label})
	}
	for _, t := range xticks {
		if t.V < xmin || t.V > xmax {
			continue
		}
		x := px(t.V)
		v.Lines = append(v.Lines, svgLine{X1: x, Y1: top, X2: x, Y2: bottom, Class: "grid"})
		v.Texts = append(v.Texts, svgText{X: x, Y: bottom + 16, Anchor: "middle", S: t.Label})
	}
	v.Lines = append(v.Lines,
		svgLine{X1: plotLeft, Y1: bottom, X2: plotLeft + plotW, Y2: bottom, Class: "axis"},
		svgLine{X1: plotLeft, Y1: top, X2: plotLeft, Y2: bottom, Class: "axis"})
	v.Texts = append(v.Texts,
		svgText{X: plotLeft + plotW/2, Y: bottom + 34, Anchor: "middle", Class: "label", S: c.XLabel},
		svgText{X: 16, Y: top + plotH/2, Anchor: "middle", Class: "label", Rotate: true, S: c.YLabel})
	for i, s := range c.Series {
		var pts strings.Builder
		for j := range s.X {
			if j > 0 {
				pts.WriteByte(' ')
			}
			pts.WriteString(coord(px(s.X[j])) + "," + coord(py(s.Y[j])))
		}
		color := palette[i%len(palette)]
		v.Polys = append(v.Polys, svgPoly{Name: s.Name, Points: pts.String(), Color: color, Dash: s.Dash})
		if s.Points {
			for j := range s.X {
				v.Rects = append(v.Rects, svgRect{X: px(s.X[j]) - 3, Y: py(s.Y[j]) - 3, W: 6, H: 6, Fill: color})
			}
		}
		lx := plotLeft + float64(i%perRow*legendItemW)
		ly := bottom + 52 + float64(i/perRow*legendRowH)
		v.Rects = append(v.Rects, svgRect{X: lx, Y: ly - 8, W: 14, H: 4, Fill: color})
		v.Texts = append(v.Texts, svgText{X: lx + 18, Y: ly - 2, Anchor: "start", S: s.Name})
	}
	return v
}

// barChart is a horizontal bar chart: one labelled bar per row.
type barChart struct {
	Title  string
	XLabel string               // with its unit
	Max    float64              // the x axis runs from 0 to Max (at least the largest bar)
	Format func(float64) string // a bar's value label
	Ticks  func(float64) string // an x tick label
	Bars   []bar
}

type bar struct {
	Label string
	Value float64
}

// view lays out c.
func (c barChart) view() svgView {
	const labelW, rowH = 180, 22
	xmax := c.Max
	for _, b := range c.Bars {
		xmax = math.Max(xmax, b.Value)
	}
	if xmax <= 0 {
		xmax = 1
	}
	plotW := float64(chartW - labelW - plotRight - 60)
	top := float64(plotTop)
	bottom := top + float64(len(c.Bars)*rowH)
	px := func(x float64) float64 { return labelW + x/xmax*plotW }
	v := svgView{Title: c.Title, W: chartW, H: int(bottom) + 44}
	v.Texts = append(v.Texts, svgText{X: labelW, Y: 18, Anchor: "start", Class: "title", S: c.Title})
	for _, t := range niceTicks(0, xmax) {
		x := px(t.V)
		v.Lines = append(v.Lines, svgLine{X1: x, Y1: top, X2: x, Y2: bottom, Class: "grid"})
		v.Texts = append(v.Texts, svgText{X: x, Y: bottom + 16, Anchor: "middle", S: c.Ticks(t.V)})
	}
	for i, b := range c.Bars {
		y := top + float64(i*rowH)
		v.Rects = append(v.Rects, svgRect{X: labelW, Y: y + 3, W: math.Max(px(b.Value)-labelW, 0), H: rowH - 6, Fill: palette[0]})
		v.Texts = append(v.Texts,
			svgText{X: labelW - 6, Y: y + rowH/2 + 4, Anchor: "end", S: b.Label},
			svgText{X: px(b.Value) + 4, Y: y + rowH/2 + 4, Anchor: "start", S: c.Format(b.Value)})
	}
	v.Lines = append(v.Lines, svgLine{X1: labelW, Y1: top, X2: labelW, Y2: bottom, Class: "axis"})
	v.Texts = append(v.Texts, svgText{X: labelW + plotW/2, Y: bottom + 34, Anchor: "middle", Class: "label", S: c.XLabel})
	return v
}

// niceTicks returns about five round ticks (1, 2 or 5 times a power of
// ten) from lo up to the first tick at or above hi.
func niceTicks(lo, hi float64) []tick {
	if !finite(lo) || !finite(hi) {
		lo, hi = 0, 1 // values a chart cannot place: an empty axis, not a hang
	}
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ts []tick
	for v := math.Ceil(lo/step) * step; len(ts) < 50; v += step {
		v = math.Round(v/step) * step // no drift: 0.30000000000000004
		ts = append(ts, tick{V: v, Label: num(v)})
		if v >= hi-step*1e-9 {
			break
		}
	}
	return ts
}

// finite reports whether v is a number a chart can place.
func finite(v float64) bool { return !math.IsInf(v, 0) && !math.IsNaN(v) }

// num formats a tick value compactly: 0.25, 40, 2.5k, 12k, 1.5M.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// coord formats an SVG coordinate with one decimal.
func coord(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// ninesTicks are the ticks of the "nines" axis, where x is
// log10(1/(1-p)): 50% at 0.30, 90% at 1, 99% at 2, and so on up to maxX.
func ninesTicks(maxX float64) []tick {
	ts := []tick{{0, "0%"}, {math.Log10(2), "50%"}, {1, "90%"}}
	labels := []string{"99%", "99.9%", "99.99%", "99.999%", "99.9999%"}
	for i, l := range labels {
		x := float64(i + 2)
		if x > math.Max(maxX, 2)+1e-9 { // always show up to 99%
			break
		}
		ts = append(ts, tick{x, l})
	}
	return ts
}

// ninesX places percentile p (0-100) on the nines axis.
func ninesX(p float64) float64 { return math.Log10(1 / (1 - p/100)) }
