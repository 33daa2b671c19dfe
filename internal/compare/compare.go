package compare

import (
	"fmt"
	"math"

	"golang.org/x/perf/benchmath"

	"github.com/sockbench/sockbench/internal/result"
)

// Confidence is the confidence level of the intervals shown around each
// median, as benchstat uses.
const Confidence = 0.95

// Row is one metric of a comparison.
type Row struct {
	Metric Metric
	// Base and New are the per-repetition values' median with its
	// confidence interval (benchmath.AssumeNothing); Lo and Hi are
	// infinite with one value.
	Base, New benchmath.Summary
	// N1 and N2 count the repetitions with a value on each side; a side
	// with 0 has no figure (no samples, nothing sent).
	N1, N2 int
	// Change is New's median over Base's, minus 1 (0.1 is +10%); +Inf when
	// the base is 0 and the new value is not; NaN without both.
	Change float64
	// Judged is true when both sides have at least two repetitions, so
	// that the U test can run; Cmp is its outcome.
	Judged bool
	Cmp    benchmath.Comparison
	// Significant is a judged change with p <= alpha (0.05).
	Significant bool
	// Limit is the --fail-on limit on this metric, if any; Fail is true
	// when the change is a regression beyond it that is significant, or
	// that cannot be judged (n=1).
	Limit *Limit
	Fail  bool
}

// Table is the comparison of two results, row by row.
type Table struct {
	BaseName, NewName string // how the columns are headed: file names, or "tcp"/"udp"
	Rows              []Row
	// Notes name the differences between the two runs that the reader
	// should know of (another transport, scenario or machine).
	Notes []Note
	// Ratios shows new/base ("1.23x") instead of the change in percent,
	// for side-by-side reports of two targets or transports.
	Ratios bool
}

// Note is one difference between two compared runs.
type Note struct {
	Kind string // transport, scenario, machine, target, version, saturated, interrupted
	Text string
}

// Note kinds.
const (
	NoteTransport   = "transport"
	NoteScenario    = "scenario"
	NoteMachine     = "machine"
	NoteTarget      = "target"
	NoteVersion     = "version"
	NoteSaturated   = "saturated"
	NoteInterrupted = "interrupted"
)

// Drop removes the notes of the given kind (a pair run by design differs
// in it).
func (t *Table) Drop(kind string) {
	var keep []Note
	for _, n := range t.Notes {
		if n.Kind != kind {
			keep = append(keep, n)
		}
	}
	t.Notes = keep
}

// RefusedError is two results that must not be compared; it names the
// difference.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// Compatible checks that base and next may be compared and returns notes
// about the differences that are allowed: another transport (a documented
// use: tcp against udp), scenario name, machine, or sockbench version. Two
// results of different modes (open and closed loop, whose latencies mean
// different things) or of which one is a broadcast run are refused.
func Compatible(base, next *result.Result) ([]Note, error) {
	b, n := base.Plan, next.Plan
	if b.Mode != n.Mode {
		return nil, &RefusedError{fmt.Sprintf("base ran %s loop and new %s loop: their latencies measure different things (open loop counts from the intended send time, closed loop from the actual one)", b.Mode, n.Mode)}
	}
	if (base.Broadcast == nil) != (next.Broadcast == nil) {
		kind := func(r *result.Result) string {
			if r.Broadcast != nil {
				return "a room broadcast run"
			}
			return "an echo run"
		}
		return nil, &RefusedError{fmt.Sprintf("base is %s and new is %s: their latencies measure different things", kind(base), kind(next))}
	}
	var notes []Note
	add := func(kind, format string, args ...any) {
		notes = append(notes, Note{kind, fmt.Sprintf(format, args...)})
	}
	if b.Transport != n.Transport {
		add(NoteTransport, "transports differ: base %s, new %s (the same workload over two transports is a fair comparison; the target's code paths differ too)", b.Transport, n.Transport)
	}
	if b.Name != n.Name {
		add(NoteScenario, "WARNING: scenarios differ: base %q, new %q", b.Name, n.Name)
	}
	be, ne := base.Env, next.Env
	if be.Host != ne.Host || be.CPUs != ne.CPUs || be.GOMAXPROCS != ne.GOMAXPROCS {
		add(NoteMachine, "WARNING: machines differ: base %s (%d cpus, GOMAXPROCS %d), new %s (%d cpus, GOMAXPROCS %d); changes may be the machine's", be.Host, be.CPUs, be.GOMAXPROCS, ne.Host, ne.CPUs, ne.GOMAXPROCS)
	}
	if b.Embedded != n.Embedded {
		where := func(e bool, url string) string {
			if e {
				return "the embedded reference server"
			}
			return url
		}
		add(NoteTarget, "targets differ: base %s, new %s", where(b.Embedded, b.Target), where(n.Embedded, n.Target))
	}
	if be.Sockbench != ne.Sockbench {
		add(NoteVersion, "sockbench versions differ: base %s, new %s", be.Sockbench, ne.Sockbench)
	}
	for _, r := range []struct {
		side string
		res  *result.Result
	}{{"base", base}, {"new", next}} {
		if r.res.Self.Saturated {
			add(NoteSaturated, "WARNING: the %s run was limited by the load generator, not the target (see its summary)", r.side)
		}
		if r.res.Interrupted {
			add(NoteInterrupted, "WARNING: the %s run was interrupted; its figures are partial", r.side)
		}
		if st := r.res.Stopped; st != nil {
			add(NoteInterrupted, "WARNING: the %s run stopped early (%s); its figures are partial", r.side, st.Reason)
		}
	}
	return notes, nil
}

// Compare compares next against base, metric by metric, with the limits
// applied. It refuses results that Compatible refuses.
func Compare(base, next *result.Result, baseName, newName string, limits []Limit) (*Table, error) {
	notes, err := Compatible(base, next)
	if err != nil {
		return nil, err
	}
	t := &Table{BaseName: baseName, NewName: newName, Notes: notes}
	bs, ns := base.Samples(), next.Samples()
	broadcast := base.Broadcast != nil && next.Broadcast != nil
	for _, m := range Metrics() {
		if m.Broadcast && !broadcast {
			continue
		}
		row := compareMetric(m, bs, ns)
		if row.N1 == 0 && row.N2 == 0 {
			continue // neither run has the figure (connect over udp)
		}
		for i := range limits {
			if limits[i].Metric.Name == m.Name {
				row.Limit = &limits[i]
			}
		}
		row.Fail = row.Limit != nil && row.regressed(row.Limit.Pct) && (row.Significant || !row.Judged)
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

func values(m Metric, reps []result.Repetition) []float64 {
	var v []float64
	for _, rep := range reps {
		if x, ok := m.value(rep); ok {
			v = append(v, x)
		}
	}
	return v
}

func compareMetric(m Metric, base, next []result.Repetition) Row {
	row := Row{Metric: m, Change: math.NaN()}
	bv, nv := values(m, base), values(m, next)
	row.N1, row.N2 = len(bv), len(nv)
	th := &benchmath.DefaultThresholds
	s1, s2 := benchmath.NewSample(bv, th), benchmath.NewSample(nv, th)
	if row.N1 > 0 {
		row.Base = benchmath.AssumeNothing.Summary(s1, Confidence)
	}
	if row.N2 > 0 {
		row.New = benchmath.AssumeNothing.Summary(s2, Confidence)
	}
	if row.N1 == 0 || row.N2 == 0 {
		return row
	}
	switch b, n := row.Base.Center, row.New.Center; {
	case b == n:
		row.Change = 0
	case b == 0:
		row.Change = math.Inf(1)
	default:
		row.Change = n/b - 1
	}
	if row.N1 >= 2 && row.N2 >= 2 {
		row.Judged = true
		row.Cmp = benchmath.AssumeNothing.Compare(s1, s2)
		row.Significant = row.Cmp.P <= row.Cmp.Alpha
	}
	return row
}

// regressed reports whether the change is worse than pct percent.
func (r Row) regressed(pct float64) bool {
	if math.IsNaN(r.Change) {
		return false
	}
	if r.Metric.HigherIsBetter {
		return -r.Change*100 > pct
	}
	return r.Change*100 > pct
}

// Failures are the rows whose --fail-on limit failed.
func (t *Table) Failures() []Row {
	var out []Row
	for _, r := range t.Rows {
		if r.Fail {
			out = append(out, r)
		}
	}
	return out
}

// Significance is the row's significance column: "p=0.008 n=5" for a
// significant change, "~ (p=0.310 n=5)" for one that is not, "~ (n=1)"
// when a side has a single repetition and the U test cannot judge, "-"
// without figures on both sides.
func (r Row) Significance() string {
	switch {
	case r.N1 == 0 || r.N2 == 0:
		return "-"
	case !r.Judged:
		if r.N1 == r.N2 {
			return fmt.Sprintf("~ (n=%d)", r.N1)
		}
		return fmt.Sprintf("~ (n=%d+%d)", r.N1, r.N2)
	case r.Significant:
		return r.Cmp.String()
	default:
		return "~ (" + r.Cmp.String() + ")"
	}
}

// ChangeString is the change in percent, "+9.45%", or "-" without it.
func (r Row) ChangeString() string {
	switch {
	case math.IsNaN(r.Change):
		return "-"
	case math.IsInf(r.Change, 1):
		return "+inf% (base 0)"
	case r.Change == 0:
		return "0.00%"
	}
	return fmt.Sprintf("%+.2f%%", 100*r.Change)
}

// Verdict is the --fail-on column: "", "ok (limit +10%)" or "FAIL (limit +10%)".
func (r Row) Verdict() string {
	if r.Limit == nil {
		return ""
	}
	if r.N1 == 0 || r.N2 == 0 {
		return "not compared (limit " + r.Limit.String() + ")"
	}
	if r.Fail {
		return "FAIL (limit " + r.Limit.String() + ")"
	}
	if r.regressed(r.Limit.Pct) {
		return "ok, not significant (limit " + r.Limit.String() + ")"
	}
	return "ok (limit " + r.Limit.String() + ")"
}

// FailMessage is one line for stderr naming a failed limit.
func (r Row) FailMessage() string {
	sig := r.Cmp.String() // p=0.008 n=5
	if !r.Judged {
		sig = fmt.Sprintf("n=%d+%d: significance not judged, limit applied as-is", r.N1, r.N2)
	}
	return fmt.Sprintf("%s regressed %s (base %s, new %s), beyond the --fail-on limit %s; %s",
		r.Metric.Name, r.ChangeString(), Format(r.Metric.Unit, r.Base.Center), Format(r.Metric.Unit, r.New.Center), r.Limit.Expr, sig)
}
