package scenarios_test

import (
	"context"
	"testing"

	"github.com/sockbench/sockbench/scenarios"
)

// A capacity search interrupted between steps says so: no step after the
// interrupt, Interrupted set, and the steps so far kept.
func TestFindMaxInterruptedBetweenSteps(t *testing.T) {
	t.Parallel()
	spec, _ := load(t, `name: cap
warmup: 100ms
timeout: 300ms
broadcast:
  rooms: 2
  publish_rate: 20
phases:
  - duration: 300ms
    conns: 10
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	th, err := scenarios.ParseThreshold("p99 > 100s")
	if err != nil {
		t.Fatal(err)
	}
	s := scenarios.Search{Factor: 2, MaxSteps: 5, Until: []scenarios.Threshold{th}}
	c, err := scenarios.FindMax(ctx, spec, s, scenarios.Limits{}, scenarios.RunOptions{Version: "test"}, func(scenarios.Step) { cancel() })
	if err != nil {
		t.Fatal(err)
	}
	if !c.Interrupted || len(c.Steps) != 1 || c.Stop != "interrupted" {
		t.Errorf("interrupted %v, %d steps, stop %q: want interrupted after one step", c.Interrupted, len(c.Steps), c.Stop)
	}
	if b := c.Steps[0].Result.Broadcast; b == nil || b.Delivered == 0 || b.Missing != 0 {
		t.Errorf("the step before the interrupt: %+v", b)
	}
}
