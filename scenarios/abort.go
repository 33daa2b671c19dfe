package scenarios

import (
	"fmt"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
)

// DefaultAbortDelay is how much of the measured window must have passed
// before --abort-on-fail judges a threshold whose verdict can still change
// (a percentile, a mean, a ratio, a rate) on the data so far.
const DefaultAbortDelay = 5 * time.Second

// FinalOnFailure reports whether a failure of t on a run's data so far is
// final: whether no data the rest of the run could add would make t pass.
// That holds only where the measured value moves one way as samples are
// added and the comparison wants it to stay on the other side:
//
//	max < X, max <= X   the maximum only grows: once a sample reaches X, it fails for good
//	min > X, min >= X   the minimum only falls: once a sample reaches X, it fails for good
//
// for every duration metric (latency, service_time, connect, send_lag,
// fanout, room_latency: for room_latency the worst room's max only grows
// too), and
//
//	loss <= 0, error_rate <= 0   one lost message or error fails it for good
//
// (the built-ins' gate). Nothing else is final: a percentile or a mean can
// move either way as samples come in; other error_rate and loss limits
// divide by messages sent, which grows; throughput and rate_ratio divide by the window so far; delivery
// and room_delivery are ratios whose owed deliveries grow. max > X or
// min < X can still come true later, so failing them is not final either.
func (t Threshold) FinalOnFailure() bool {
	switch {
	case t.Metric == "loss" || t.Metric == "error_rate":
		return t.Op == "<=" && t.Value == 0
	case t.Unit != "ns":
		return false
	case t.Stat == "max":
		return t.Op == "<" || t.Op == "<="
	case t.Stat == "min":
		return t.Op == ">" || t.Op == ">="
	}
	return false
}

// earlyAbort checks ths on r, a cumulative snapshot of a run still going,
// taken at ns since the start with window of the measured window behind it
// (0 before it began), and returns the first threshold that stops the run,
// or nil:
//   - a threshold whose failure is final (FinalOnFailure), at any time;
//   - any other threshold that fails once at least delay of the measured
//     window has passed: a judgement on partial data, as k6's abortOnFail
//     makes.
//
// A threshold that cannot be measured yet (no samples, or a broadcast
// metric, whose accounting is only settled at the end) stops nothing.
func earlyAbort(ths []Threshold, r *result.Result, ns, window int64, delay time.Duration) *result.Abort {
	// Final failures first: a verdict no later data can change is a better
	// reason to stop than a judgement on partial data.
	for _, finalOnly := range []bool{true, false} {
		if a := firstAbort(ths, r, ns, window, delay, finalOnly); a != nil {
			return a
		}
	}
	return nil
}

// firstAbort is the first of ths that fails on r and may stop the run (a
// final failure; with finalOnly false, any failure after the delay).
func firstAbort(ths []Threshold, r *result.Result, ns, window int64, delay time.Duration, finalOnly bool) *result.Abort {
	for _, t := range ths {
		final := t.FinalOnFailure()
		if finalOnly && !final {
			continue
		}
		if !final && (window <= 0 || window < int64(delay)) {
			continue
		}
		c := t.Check(r)
		if c.Pass || c.Reason != "" {
			continue
		}
		a := &result.Abort{
			Expr: t.Expr, Source: c.Source, Metric: t.Metric, Measured: c.Measured, Unit: t.Unit,
			AtNs: ns, WindowNs: max(window, 0), Final: final,
		}
		at := time.Duration(window).Round(time.Millisecond)
		if final {
			a.Reason = fmt.Sprintf("%s failed %s into the measured window and cannot pass whatever follows (the %s only %s as samples are added)",
				t.Expr, at, t.Stat, map[bool]string{true: "grows", false: "falls"}[t.Stat == "max"])
			if window <= 0 {
				a.Reason = fmt.Sprintf("%s failed before the measured window began and cannot pass whatever follows (the %s only %s as samples are added)",
					t.Expr, t.Stat, map[bool]string{true: "grows", false: "falls"}[t.Stat == "max"])
			}
		} else {
			a.Reason = fmt.Sprintf("%s failed on the first %s of the measured window (--abort-delay %s): a judgement on partial data; the full run might have passed",
				t.Expr, at, delay)
		}
		return a
	}
	return nil
}

// snapshot is the Result so far of a run still going, as far as thresholds
// need it: counters, histograms, and the measured window from winStart (ns
// since the start; 0 if it has not begun) to now, with the phases begun.
func snapshot(c result.Counters, h map[string]*result.Histogram, p *plan.Plan, winStart, now int64) *result.Result {
	r := &result.Result{Counters: c, Histograms: h}
	if winStart <= 0 || now <= winStart {
		return r
	}
	r.Window = result.Window{StartNs: winStart, EndNs: now}
	at := winStart
	for _, ph := range p.Phases {
		if at >= now {
			break
		}
		pr := result.PhaseRun{Name: ph.Name, StartNs: at, EndNs: min(at+int64(ph.Duration), now), Conns: ph.Conns, Size: ph.Size}
		if p.Mode == plan.Open {
			pr.PlannedRate = ph.Rate()
		}
		r.Phases = append(r.Phases, pr)
		at += int64(ph.Duration)
	}
	return r
}
