package compare

import (
	"fmt"

	"golang.org/x/perf/benchmath"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Format shows a value in its unit: durations with three significant
// digits ("21.3us"), rates in msg/s, ratios as percentages.
func Format(unit string, v float64) string {
	switch unit {
	case UnitRate:
		return fmt.Sprintf("%.0f msg/s", v)
	case UnitRatio:
		return fmt.Sprintf("%.3g%%", 100*v)
	}
	return duration(v)
}

func duration(ns float64) string {
	if ns == 0 {
		return "0"
	}
	d := time.Duration(ns)
	unit, div := "s", 1e9
	switch {
	case d < time.Microsecond:
		unit, div = "ns", 1
	case d < time.Millisecond:
		unit, div = "us", 1e3
	case d < time.Second:
		unit, div = "ms", 1e6
	}
	x := ns / div
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f%s", x, unit)
	case x >= 10:
		return fmt.Sprintf("%.1f%s", x, unit)
	}
	return fmt.Sprintf("%.2f%s", x, unit)
}

func side(unit string, n int, s interface {
	PctRangeString() string
}, center float64) string {
	if n == 0 {
		return "-"
	}
	v := Format(unit, center)
	if n > 1 {
		v += " ± " + s.PctRangeString()
	}
	return v
}

// header is the table's column heads.
func (t *Table) header() []string {
	h := []string{"metric", t.BaseName, t.NewName, "change", "significance", "limit"}
	if t.Ratios {
		h[3] = "ratio"
	}
	return h
}

func (t *Table) cells(r Row) []string {
	c := []string{r.Metric.Label, side(r.Metric.Unit, r.N1, r.Base, r.Base.Center), side(r.Metric.Unit, r.N2, r.New, r.New.Center),
		r.ChangeString(), r.Significance(), r.Verdict()}
	if t.Ratios {
		c[3] = r.Ratio()
	}
	return c
}

func (t *Table) hasLimits() bool {
	for _, r := range t.Rows {
		if r.Limit != nil {
			return true
		}
	}
	return false
}

// Text writes the table as aligned columns, as benchstat does: the median
// of each side with its 95% confidence interval (when a side has more than
// one repetition), the change of the medians, and the Mann-Whitney U test's
// p-value (a "~" means no significant change at alpha 0.05), then the notes.
func (t *Table) Text(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range t.Cells() {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return t.footer(w, "")
}

func (t *Table) footer(w io.Writer, bullet string) error {
	var b strings.Builder
	b.WriteString("\n")
	for _, f := range t.Footnotes() {
		b.WriteString(bullet + f + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Footnotes are the lines under the table: how to read it, the statistics'
// warnings, and the notes on how the two runs differ.
func (t *Table) Footnotes() []string {
	out := []string{"~ means no significant change (Mann-Whitney U over repetitions, alpha 0.05); ± is the 95% confidence interval of the median."}
	unjudged, warnings := t.weak()
	if unjudged {
		out = append(out, "n=1: significance cannot be judged with one repetition on a side; --fail-on limits apply as-is. Run with --count 5 or more on both sides.")
	}
	out = append(out, warnings...)
	for _, n := range t.Notes {
		out = append(out, n.Text)
	}
	return out
}

// Cells are the table's cells as Text shows them, the column heads first
// (the limit column only when a row has a limit), for other renderings
// such as the HTML report.
func (t *Table) Cells() [][]string {
	cols := len(t.header())
	if !t.hasLimits() {
		cols--
	}
	out := [][]string{t.header()[:cols]}
	for _, r := range t.Rows {
		out = append(out, t.cells(r)[:cols])
	}
	return out
}

// weak reports whether some row could not be judged (n=1), and the
// statistics' warnings (too few repetitions for a confidence interval or
// for a significant difference, all values equal), each once with the
// metrics it concerns.
func (t *Table) weak() (unjudged bool, warnings []string) {
	var order []string
	rows := map[string][]string{}
	add := func(err error, label string) {
		w := err.Error()
		if _, ok := rows[w]; !ok {
			order = append(order, w)
		}
		if l := rows[w]; len(l) == 0 || l[len(l)-1] != label {
			rows[w] = append(l, label)
		}
	}
	for _, r := range t.Rows {
		if r.N1 == 0 || r.N2 == 0 {
			continue
		}
		if !r.Judged {
			unjudged = true
			continue
		}
		for _, sum := range []benchmath.Summary{r.Base, r.New} {
			for _, err := range sum.Warnings {
				add(err, r.Metric.Label)
			}
		}
		for _, err := range r.Cmp.Warnings {
			add(err, r.Metric.Label)
		}
	}
	for _, w := range order {
		l := rows[w]
		if len(l) == len(t.Rows) || len(l) > 4 {
			warnings = append(warnings, fmt.Sprintf("%s (%d metrics)", w, len(l)))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s (%s)", w, strings.Join(l, ", ")))
	}
	return unjudged, warnings
}

// Markdown writes the table as a GitHub-flavoured Markdown table with the
// notes as a list.
func (t *Table) Markdown(w io.Writer) error {
	var b strings.Builder
	cols := len(t.header())
	if !t.hasLimits() {
		cols--
	}
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells[:cols] {
			b.WriteString(" " + strings.ReplaceAll(c, "|", "\\|") + " |")
		}
		b.WriteString("\n")
	}
	row(t.header())
	b.WriteString("|" + strings.Repeat("---|", cols) + "\n")
	for _, r := range t.Rows {
		cells := t.cells(r)
		if r.Fail {
			cells[5] = "**" + cells[5] + "**"
		}
		row(cells)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return t.footer(w, "- ")
}

// Ratio is new over base, for side-by-side reports ("1.23x"), or "-".
func (r Row) Ratio() string {
	if r.N1 == 0 || r.N2 == 0 || r.Base.Center == 0 || math.IsNaN(r.Change) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r.New.Center/r.Base.Center)
}
