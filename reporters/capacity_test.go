package reporters

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sockbench/sockbench/internal/result"
)

// capacity is a search of three steps of richResult, the last breaking
// (or, with passAll, none).
func capacity(t *testing.T, broadcast, passAll bool) *Capacity {
	t.Helper()
	c := &Capacity{LastPass: 1, Breaking: 2, Until: []string{"p99 > 250ms", "<loss> > 0.1%"}, Stop: "a condition broke",
		Conclusion: "capacity: 150 conns pass; 225 conns break (a condition broke)"}
	if passAll {
		c.LastPass, c.Breaking, c.Stop = 2, -1, "no step broke within 3 steps (--max-steps)"
	}
	for i, n := range []int{100, 150, 225} {
		r := richResult(t, broadcast)
		r.Histograms[result.Latency] = spread(t, 20000, 20e3, 12e6*float64(i+1))
		st := CapacityStep{Conns: n, Result: r, Verdict: "pass", Passed: true}
		if i == c.Breaking {
			st.Verdict, st.Passed = "BREAKS: p99 > 250ms: measured <300ms>", false
		}
		c.Steps = append(c.Steps, st)
	}
	return c
}

func TestHTMLCapacity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		broadcast, passAll bool
		charts             int
		want, notWant      []string
	}{
		{
			name: "echo", charts: 3 + 3*5,
			want: []string{
				"<title>sockbench capacity search: echo</title>",
				"capacity: 150 conns pass; 225 conns break",
				"<td>p99 &gt; 250ms or &lt;loss&gt; &gt; 0.1%</td>",
				`<tr class="mark"><td><a href="#step-2">2</a></td><td>150</td><td class="verdict"><span class="pass">pass</span> (the last pass)</td>`,
				"(the last pass)", "(the break)",
				`<span class="fail">BREAKS: p99 &gt; 250ms: measured &lt;300ms&gt;</span>`,
				`<h2 id="step-3">Step 3: 225 conns, BREAKS`,
				"Latency per step", "connections in the step (subscribers, for broadcast)", "lost (% of sent)", "not delivered (%)",
				"throughput (msg/s)", ">passes | breaks<",
			},
			notWant: []string{"<loss>", "fanout p99"},
		},
		{
			name: "broadcast, none broke", broadcast: true, passAll: true, charts: 3 + 3*8,
			want:    []string{"<th>fanout p99</th>", "<th>delivery ratio</th>", "not delivered (% of owed deliveries)", "no step broke within 3 steps"},
			notWant: []string{"(the break)", "passes | breaks"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := HTMLCapacity(&b, capacity(t, tc.broadcast, tc.passAll)); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if got := strings.Count(out, `<svg class="chart"`); got != tc.charts {
				t.Errorf("%d charts, want %d", got, tc.charts)
			}
			checkContains(t, out, tc.want, tc.notWant)
			checkSelfContained(t, out)
		})
	}
	if err := HTMLCapacity(&bytes.Buffer{}, &Capacity{LastPass: -1, Breaking: -1, Stop: "interrupted"}); err == nil {
		t.Error("a search without steps rendered")
	}
}
