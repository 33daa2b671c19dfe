package reporters

import (
	"fmt"
	"io"
	"strings"

	"github.com/sockbench/sockbench/internal/result"
)

// Markdown writes a short Markdown summary of a run for CI pages (GitHub's
// job summary, merge request notes): what ran, the latency percentiles,
// the message accounting and the threshold table.
func Markdown(w io.Writer, r *result.Result) error {
	var b strings.Builder
	p := r.Plan
	verdict := "passed"
	for _, t := range r.Checks {
		if !t.Pass {
			verdict = "**FAILED**"
		}
	}
	if r.Aborted != nil {
		verdict = "**FAILED** (aborted)"
	}
	if r.Stopped != nil {
		verdict = "**NOT CARRIED OUT** (stopped early)"
	}
	fmt.Fprintf(&b, "### sockbench %s: %s\n\n", p.Name, verdict)
	target := p.Target
	if p.Embedded {
		target += " (embedded reference server)"
	}
	fmt.Fprintf(&b, "%s over %s, %s loop, engine %s, target `%s`, %s measured", p.Name, p.Transport, p.Mode, p.Engine, target, dur(int64(r.MeasuredSeconds()*1e9)))
	if n := len(r.Repetitions); n > 0 {
		fmt.Fprintf(&b, " in %d repetitions", n)
	}
	b.WriteString(".\n\n")
	if a := r.Aborted; a != nil {
		fmt.Fprintf(&b, "**Aborted** at %s (`--abort-on-fail`): %s. The figures are partial.\n\n", dur(a.AtNs), a.Reason)
	}
	if st := r.Stopped; st != nil {
		fmt.Fprintf(&b, "**Stopped** at %s: %s. The figures are partial.\n\n", dur(st.AtNs), st.Reason)
	}
	b.WriteString("| | count | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n")
	for _, name := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		h := r.Histograms[name]
		if h == nil || h.Count == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", name, h.Count, dur(h.P50), dur(h.P90), dur(h.P99), dur(h.P999), dur(h.Max))
	}
	c := r.Counters
	fmt.Fprintf(&b, "\nMessages: sent %d, received %d, lost %d, in flight at end %d; errors: %s.\n", c.Sent, c.Received, c.Lost, c.InFlight, errorsLine(r))
	for _, warn := range targetWarnings(r) {
		fmt.Fprintf(&b, "\n> **Warning**: %s\n", warn)
	}
	for _, warn := range r.Self.Warnings {
		fmt.Fprintf(&b, "\n> %s\n", warn)
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n| threshold | measured | verdict | where |\n|---|---|---|---|\n")
		for _, t := range r.Checks {
			v := "pass"
			if !t.Pass {
				v = "**FAIL**"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", t.Expr, strings.TrimPrefix(Measured(t), "measured "), v, t.Source)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
