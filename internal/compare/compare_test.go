package compare

import (
	"strings"
	"testing"

	"github.com/sockbench/sockbench/internal/result"
)

func TestParseLimits(t *testing.T) {
	for _, tc := range []struct {
		in      string
		metrics []string
		pcts    []float64
		err     string
	}{
		{in: "p99:+10%,throughput:-5%", metrics: []string{"latency.p99", "throughput"}, pcts: []float64{10, 5}},
		{in: " service_time.p50 : 2.5% , loss:+0% ", metrics: []string{"service_time.p50", "loss"}, pcts: []float64{2.5, 0}},
		{in: "fanout.p99:+20%,delivery_ratio:-1%", metrics: []string{"fanout.p99", "delivery_ratio"}, pcts: []float64{20, 1}},
		{in: "p99<20mz", err: "this is a threshold"},
		{in: "p99:+10", err: `limit "+10" is not a percentage`},
		{in: "p99:+ten%", err: `limit "+ten%" is not a number of percent`},
		{in: "latncy.p99:+5%", err: `unknown metric "latncy.p99"`},
		{in: "p99:-5%", err: "latency.p99 gets worse by a rise; write p99:+5%"},
		{in: "throughput:+5%", err: "throughput gets worse by a fall; write throughput:-5%"},
		{in: ",", err: "no limit"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ls, err := ParseLimits(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != len(tc.metrics) {
				t.Fatalf("%d limits, want %d", len(ls), len(tc.metrics))
			}
			for i, l := range ls {
				if l.Metric.Name != tc.metrics[i] || l.Pct != tc.pcts[i] {
					t.Errorf("limit %d: %s %v%%, want %s %v%%", i, l.Metric.Name, l.Pct, tc.metrics[i], tc.pcts[i])
				}
			}
		})
	}
}

// reps makes one repetition per throughput value (msg/s over 1 s).
func reps(rates ...int64) *result.Result {
	r := &result.Result{Plan: result.PlanInfo{Mode: "open", Transport: "ws"}}
	for _, x := range rates {
		r.Repetitions = append(r.Repetitions, result.Repetition{Seconds: 1, Counters: result.Counters{Sent: x, Received: x}})
	}
	return r
}

func TestCompareSignificance(t *testing.T) {
	lim, err := ParseLimits("throughput:-5%")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		base, new *result.Result
		sig       string
		change    string
		fail      bool
	}{
		{"n=1 fails as-is", reps(1000), reps(900), "~ (n=1)", "-10.00%", true},
		{"n=1 within", reps(1000), reps(990), "~ (n=1)", "-1.00%", false},
		{"n=5 significant fall", reps(1000, 1001, 1002, 1003, 1004), reps(900, 901, 902, 903, 904), "p=0.008 n=5", "-9.98%", true},
		{"n=5 overlapping", reps(1000, 900, 1002, 903, 1004), reps(901, 1001, 904, 1003, 905), "~ (p=", "", false},
		{"n=5 rise is no regression", reps(1000, 1001, 1002, 1003, 1004), reps(1100, 1101, 1102, 1103, 1104), "p=0.008 n=5", "+9.98%", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := Compare(tc.base, tc.new, "a", "b", lim)
			if err != nil {
				t.Fatal(err)
			}
			var row *Row
			for i := range tab.Rows {
				if tab.Rows[i].Metric.Name == "throughput" {
					row = &tab.Rows[i]
				}
			}
			if row == nil {
				t.Fatal("no throughput row")
			}
			if got := row.Significance(); !strings.HasPrefix(got, tc.sig) {
				t.Errorf("significance %q, want %q", got, tc.sig)
			}
			if got := row.ChangeString(); tc.change != "" && got != tc.change {
				t.Errorf("change %q, want %q", got, tc.change)
			}
			if row.Fail != tc.fail {
				t.Errorf("fail %v, want %v", row.Fail, tc.fail)
			}
		})
	}
}

// TestCells: the cells other renderings use are Text's columns, the limit
// column only with a limit.
func TestCells(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits string
		heads  []string
	}{
		{"no limit", "", []string{"metric", "base", "new", "change", "significance"}},
		{"a limit", "throughput:-5%", []string{"metric", "base", "new", "change", "significance", "limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var limits []Limit
			if tc.limits != "" {
				var err error
				if limits, err = ParseLimits(tc.limits); err != nil {
					t.Fatal(err)
				}
			}
			tab, err := Compare(reps(100, 101, 99), reps(90, 91, 89), "base", "new", limits)
			if err != nil {
				t.Fatal(err)
			}
			cells := tab.Cells()
			if got, want := strings.Join(cells[0], ","), strings.Join(tc.heads, ","); got != want {
				t.Errorf("heads %s, want %s", got, want)
			}
			if len(cells) != len(tab.Rows)+1 || len(cells) < 2 {
				t.Fatalf("%d rows of cells for %d rows", len(cells), len(tab.Rows))
			}
			for _, row := range cells[1:] {
				if len(row) != len(tc.heads) {
					t.Errorf("row %v: %d cells, want %d", row, len(row), len(tc.heads))
				}
			}
			if fs := tab.Footnotes(); len(fs) == 0 || !strings.HasPrefix(fs[0], "~ means no significant change") {
				t.Errorf("footnotes %q", fs)
			}
		})
	}
}
