package scenarios

import (
	"context"
	"fmt"
	"math"

	"github.com/sockbench/sockbench/internal/result"
)

// Capacity search defaults.
const (
	DefaultStepFactor = 1.5
	DefaultMaxSteps   = 10
)

// DefaultUntil is what breaks a capacity search step when --until is not
// given: latency p99 over 250 ms, errors on more than 1% of messages, and,
// for broadcast, under 99.9% of deliveries made (for echo, over 0.1% lost).
func DefaultUntil(broadcast bool) []string {
	if broadcast {
		return []string{"p99 > 250ms", "delivery < 99.9%", "error_rate > 1%"}
	}
	return []string{"p99 > 250ms", "loss > 0.1%", "error_rate > 1%"}
}

// Search is a capacity search: the scenario is run again and again, each
// step with more connections (subscribers, for broadcast) than the last,
// over fresh connections and a fresh warm-up, until a step breaks.
type Search struct {
	Factor   float64     // connections grow by this factor each step (> 1)
	Until    []Threshold // a step breaks when any of these holds
	MaxSteps int         // at most this many steps
}

// Step is one run of a capacity search.
type Step struct {
	Conns  int // the phase's conns (subscribers, for broadcast)
	Result *result.Result
	// Broke lists the conditions that held, with what was measured; a
	// condition that could not be measured breaks the step too.
	Broke []result.ThresholdResult
	// Saturated is set when the load generator limited the run: beyond
	// it, the figures describe sockbench, not the target.
	Saturated bool
}

// Passed reports whether the step kept every condition.
func (s Step) Passed() bool {
	return len(s.Broke) == 0 && !s.Saturated && (s.Result == nil || s.Result.Stopped == nil)
}

// Capacity is a finished search.
type Capacity struct {
	Steps []Step
	// LastPass and Breaking index Steps: the last step that passed and the
	// first that broke (-1: none).
	LastPass, Breaking int
	Stop               string // why the search stopped
	Interrupted        bool   // the search was interrupted (ctx cancelled)
}

// FindMax runs the capacity search s on spec, starting at its first
// phase's conns. Each step is planned with lim and run with opts; done, if
// set, is called after each step. It stops at the first step that breaks,
// at MaxSteps, at the open-files limit, when the load generator saturates,
// or when ctx is cancelled (the steps so far are returned).
func FindMax(ctx context.Context, spec *Spec, s Search, lim Limits, opts RunOptions, done func(Step)) (*Capacity, error) {
	c := &Capacity{LastPass: -1, Breaking: -1}
	if len(spec.Phases) == 0 {
		return nil, &Error{Flag: "--find-max", Msg: "the scenario has no phase"}
	}
	n := spec.Phases[0].Conns
	for i := 0; ; i++ {
		if i == s.MaxSteps {
			c.Stop = fmt.Sprintf("no step broke within %d steps (--max-steps)", s.MaxSteps)
			return c, nil
		}
		if ctx.Err() != nil {
			c.Stop, c.Interrupted = "interrupted", true
			return c, nil
		}
		spec.Apply(Overrides{Conns: &n})
		p, err := spec.Plan(lim)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			c.Stop = fmt.Sprintf("the next step (%d conns) cannot run here: %v", n, err)
			return c, nil
		}
		r, err := Run(ctx, spec, p, opts)
		if err != nil {
			if ctx.Err() != nil {
				c.Stop, c.Interrupted = "interrupted", true
				return c, nil
			}
			if i == 0 {
				return nil, err
			}
			c.Stop = fmt.Sprintf("step %d (%d conns) could not be run: %v", i+1, n, err)
			return c, nil
		}
		st := Step{Conns: n, Result: r, Saturated: r.Self.Saturated}
		for _, th := range s.Until {
			if ch := th.Check(r); ch.Pass || ch.Reason != "" {
				st.Broke = append(st.Broke, ch)
			}
		}
		c.Steps = append(c.Steps, st)
		if done != nil {
			done(st)
		}
		switch {
		case r.Interrupted:
			c.Stop, c.Interrupted = "interrupted", true
			return c, nil
		case r.Stopped != nil:
			c.Breaking = i
			c.Stop = "the step stopped early: " + r.Stopped.Reason
			return c, nil
		case st.Saturated:
			c.Breaking = i
			c.Stop = "the load generator saturated: beyond this step the figures would describe sockbench, not the target"
			return c, nil
		case !st.Passed():
			c.Breaking = i
			c.Stop = "a condition broke"
			return c, nil
		}
		c.LastPass = i
		next := int(math.Ceil(float64(n) * s.Factor))
		if next <= n {
			next = n + 1
		}
		n = next
	}
}
