package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/reporters"
	"github.com/sockbench/sockbench/scenarios"
)

// capacitySearch is what the --find-max flags asked for; the break
// conditions are parsed once the scenario is known (their default depends
// on whether it is a broadcast).
type capacitySearch struct {
	until    []string
	factor   float64
	maxSteps int
	html     string // --html: one report of every step
}

// searchFlags checks the capacity search flags.
func searchFlags(what string, until []string, factor float64, maxSteps int) (*capacitySearch, error) {
	switch {
	case what == "":
		return nil, &usageError{"--until, --step-factor and --max-steps need --find-max conns"}
	case what != "conns":
		return nil, &usageError{fmt.Sprintf("--find-max %q: the search steps up connections; want --find-max conns", what)}
	case factor <= 1 || factor > 100:
		return nil, &usageError{fmt.Sprintf("--step-factor %g: want a factor above 1 (and at most 100), like 1.5", factor)}
	case maxSteps < 1:
		return nil, &usageError{fmt.Sprintf("--max-steps %d: want at least 1", maxSteps)}
	}
	for _, u := range until {
		if _, err := scenarios.ParseThreshold(u); err != nil {
			return nil, &usageError{"--until " + err.Error()}
		}
	}
	return &capacitySearch{until: until, factor: factor, maxSteps: maxSteps}, nil
}

// runCapacity runs the capacity search, writing each step's result next to
// path (NAME-stepK.json) and the table of steps to stdout. It exits 1 when
// not even the first step passed.
func runCapacity(ctx context.Context, spec *scenarios.Spec, p *plan.Plan, cs *capacitySearch, lim scenarios.Limits,
	opts scenarios.RunOptions, path string, stdout, stderr io.Writer) error {
	until := cs.until
	if len(until) == 0 {
		until = scenarios.DefaultUntil(p.Broadcast != nil)
	}
	s := scenarios.Search{Factor: cs.factor, MaxSteps: cs.maxSteps}
	for _, u := range until {
		th, _ := scenarios.ParseThreshold(u) // checked by searchFlags, or a default
		th.File = "--until"
		s.Until = append(s.Until, th)
	}
	fmt.Fprintf(stderr, "sockbench: capacity search from %d conns, x%g per step, until %s\n", spec.Phases[0].Conns, s.Factor, strings.Join(until, " or "))
	base := strings.TrimSuffix(path, filepath.Ext(path))
	var files []string
	var werr error
	c, err := scenarios.FindMax(ctx, spec, s, lim, opts, func(st scenarios.Step) {
		file := fmt.Sprintf("%s-step%d.json", base, len(files)+1)
		if err := saveResult(file, st.Result); err != nil && werr == nil {
			werr = err // the step is kept in the temporary directory; the search exits 3
		}
		files = append(files, file)
		fmt.Fprintf(stderr, "sockbench: step %d, %d conns: %s (%s)\n", len(files), st.Conns, stepVerdict(st), file)
	})
	if err != nil {
		return err
	}
	if err := capacityTable(stdout, c, until); err != nil {
		return err
	}
	if cs.html != "" && len(c.Steps) > 0 {
		if err := createReport(cs.html, "html", func(w io.Writer) error { return reporters.HTMLCapacity(w, capacityReport(c, until)) }); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "sockbench: HTML report of the %d steps written to %s\n", len(c.Steps), cs.html)
	}
	if werr != nil {
		return werr
	}
	if c.Interrupted {
		return &cannotError{fmt.Errorf("interrupted; the steps so far are written")}
	}
	if c.LastPass < 0 {
		return &gateError{"capacity search: the first step already broke"}
	}
	return nil
}

// stepVerdict is one step's outcome in words.
func stepVerdict(st scenarios.Step) string {
	if st.Result.Interrupted {
		return "interrupted: not judged"
	}
	var why []string
	for _, b := range st.Broke {
		if b.Reason != "" {
			why = append(why, fmt.Sprintf("%s: %s", b.Expr, b.Reason))
			continue
		}
		why = append(why, fmt.Sprintf("%s: %s", b.Expr, reporters.Measured(b)))
	}
	if st.Saturated {
		why = append(why, "the load generator saturated")
	}
	if s := st.Result.Stopped; s != nil {
		why = append(why, "stopped early: "+s.Reason)
	}
	if len(why) == 0 {
		return "pass"
	}
	return "BREAKS: " + strings.Join(why, "; ")
}

// capacityTable writes every step's figures, the last passing and the
// breaking step marked.
func capacityTable(w io.Writer, c *scenarios.Capacity, until []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tconns\trecv msg/s\tdelivery\tp50\tp99\tp99.9\tfan-out p99\tsend lag p99\terrors\tcpu\t  verdict")
	for i, st := range c.Steps {
		r := st.Result
		secs := r.Window.Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(r.Counters.Received) / secs
		}
		delivery, fanout := "-", "-"
		if b := r.Broadcast; b != nil {
			delivery = "n/a"
			if b.Expected > 0 {
				delivery = fmt.Sprintf("%.3f%%", 100*b.DeliveryRatio())
			}
			if b.FanOut != nil && b.FanOut.Count > 0 {
				fanout = ms(b.FanOut.P99)
			}
		} else if r.Counters.Sent > 0 {
			delivery = fmt.Sprintf("%.3f%%", 100*float64(r.Counters.Received)/float64(r.Counters.Sent))
		}
		lat := r.Histograms[result.Latency]
		lag := r.Histograms[result.SendLag]
		v := stepVerdict(st)
		if i == c.LastPass {
			v = "pass (the last)"
		}
		fmt.Fprintf(tw, "%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.0f%%\t  %s\n", i+1, st.Conns, rate, delivery,
			ms(lat.P50), ms(lat.P99), ms(lat.P999), fanout, ms(lag.P99), r.Counters.ErrorsTotal(), r.Self.CPUPercent, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, conclusion(c))
	fmt.Fprintf(w, "conditions: a step breaks when %s\n", strings.Join(until, " or "))
	return nil
}

// conclusion is the search's outcome in one line.
func conclusion(c *scenarios.Capacity) string {
	switch {
	case c.LastPass >= 0 && c.Breaking >= 0:
		return fmt.Sprintf("capacity: %d conns pass; %d conns break (%s)", c.Steps[c.LastPass].Conns, c.Steps[c.Breaking].Conns, c.Stop)
	case c.LastPass >= 0:
		return fmt.Sprintf("capacity: at least %d conns pass; %s", c.Steps[c.LastPass].Conns, c.Stop)
	case c.Breaking >= 0:
		return fmt.Sprintf("capacity: the first step (%d conns) already breaks (%s)", c.Steps[c.Breaking].Conns, c.Stop)
	}
	return fmt.Sprintf("capacity: no step finished (%s)", c.Stop)
}

// capacityReport is the search as the HTML report takes it.
func capacityReport(c *scenarios.Capacity, until []string) *reporters.Capacity {
	rc := &reporters.Capacity{LastPass: c.LastPass, Breaking: c.Breaking, Until: until, Stop: c.Stop, Conclusion: conclusion(c)}
	for _, st := range c.Steps {
		rc.Steps = append(rc.Steps, reporters.CapacityStep{Conns: st.Conns, Result: st.Result, Verdict: stepVerdict(st), Passed: st.Passed()})
	}
	return rc
}

// ms formats ns as milliseconds with three decimals, for aligned columns.
func ms(ns int64) string { return fmt.Sprintf("%.3fms", float64(ns)/float64(time.Millisecond)) }
