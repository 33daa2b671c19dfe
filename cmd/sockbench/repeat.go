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
// interrupted repetition ends the sequence.
func runRepeated(ctx context.Context, spec *scenarios.Spec, p *plan.Plan, lim scenarios.Limits, opts scenarios.RunOptions, count int, stderr io.Writer) (*result.Result, error) {
	if count <= 1 {
		return scenarios.Run(ctx, spec, p, opts)
	}
	var runs []*result.Result
	for i := range count {
		if i > 0 {
			var err error
			if p, err = spec.Plan(lim); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(stderr, "sockbench: repetition %d of %d\n", i+1, count)
		r, err := scenarios.Run(ctx, spec, p, opts)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
		if r.Interrupted || r.Aborted != nil {
			break
		}
	}
	m, err := result.Merge(runs)
	if err != nil {
		return nil, err
	}
	m.Checks = nil
	for _, th := range spec.Thresholds {
		m.Checks = append(m.Checks, th.Check(m))
	}
	return m, nil
}
