package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/scenarios"
)

// runRepeated runs spec count times in sequence against the same target,
// each run with fresh connections (and, for the embedded server, a fresh
// server), and merges them: counters summed, histograms merged, every
// repetition summarised in Result.Repetitions. Thresholds are checked
// against the merged result. p is the first run's plan; each later run is
// planned again, since Run points an embedded target at its own server. An
// interrupted or aborted repetition ends the sequence.
func runRepeated(ctx context.Context, spec *scenarios.Spec, p *plan.Plan, lim scenarios.Limits, opts scenarios.RunOptions, count int, stderr io.Writer) (*result.Result, error) {
	if count <= 1 {
		return scenarios.Run(ctx, spec, p, opts)
	}
	rp := &repeater{spec: spec, p: p, lim: lim, opts: opts}
	for i := range count {
		fmt.Fprintf(stderr, "sockbench: repetition %d of %d\n", i+1, count)
		r, err := rp.once(ctx)
		if err != nil {
			if len(rp.runs) == 0 {
				return nil, err
			}
			rp.cut(err, stderr) // keep the repetitions measured so far
			break
		}
		if r.Interrupted || r.Aborted != nil || r.Stopped != nil {
			break
		}
	}
	return rp.merged()
}

// repeater runs one spec's repetitions one at a time, so that two specs'
// repetitions can take turns (run --against reference --count N).
type repeater struct {
	spec *scenarios.Spec
	p    *plan.Plan // the next run's plan
	lim  scenarios.Limits
	opts scenarios.RunOptions
	runs []*result.Result
}

// once runs one more repetition, on a fresh plan after the first.
func (rp *repeater) once(ctx context.Context) (*result.Result, error) {
	if len(rp.runs) > 0 {
		var err error
		if rp.p, err = rp.spec.Plan(rp.lim); err != nil {
			return nil, err
		}
	}
	r, err := scenarios.Run(ctx, rp.spec, rp.p, rp.opts)
	if err != nil {
		return nil, err
	}
	rp.runs = append(rp.runs, r)
	return r, nil
}

// cut ends a sequence that a repetition could not be run in (interrupted
// before it began, the target gone): the repetitions so far are kept, the
// result is marked interrupted (so that run exits 3) and says why.
func (rp *repeater) cut(err error, stderr io.Writer) {
	last := rp.runs[len(rp.runs)-1]
	last.Interrupted = true
	rp.runs[0].Self.Warnings = append(rp.runs[0].Self.Warnings, fmt.Sprintf("repetition %d could not be run (%v); the result holds the %d before it", len(rp.runs)+1, err, len(rp.runs)))
	fmt.Fprintf(stderr, "sockbench: repetition %d could not be run: %v; keeping the %d measured\n", len(rp.runs)+1, err, len(rp.runs))
}

// merged is the repetitions so far as one result (see result.Merge), with
// the thresholds checked against it.
func (rp *repeater) merged() (*result.Result, error) {
	m, err := result.Merge(rp.runs)
	if err != nil {
		return nil, err
	}
	m.Checks = nil
	for _, th := range rp.spec.Thresholds {
		m.Checks = append(m.Checks, th.Check(m))
	}
	return m, nil
}
