package reporters

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
)

// repeated is richResult run three times: Repetitions with rising latency.
func repeated(t *testing.T, broadcast bool) *result.Result {
	t.Helper()
	var runs []*result.Result
	for i := range 3 {
		r := richResult(t, broadcast)
		r.StartedAt = r.StartedAt.Add(time.Duration(i) * time.Minute)
		r.Histograms[result.Latency] = spread(t, 20000, 20e3*float64(i+1), 12e6)
		runs = append(runs, r)
	}
	m, err := result.Merge(runs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// renderOverlay renders two results overlaid as 'report A B -f html' does.
func renderOverlay(t *testing.T, a, b Labelled) string {
	t.Helper()
	tab, err := compare.Compare(a.Result, b.Result, a.Label, b.Label, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := HTMLOverlay(&out, a.Label+" vs "+b.Label, a, b, tab); err != nil {
		t.Fatalf("HTMLOverlay: %v", err)
	}
	return out.String()
}

func TestHTMLRepetitions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		broadcast bool
		charts    int
		want      []string
	}{
		{"echo", false, 7, []string{"<h2>Repetitions</h2>", "Latency per repetition", "throughput (msg/s)", "repetition (in the order run)",
			"<th>latency p99.9</th>", "<td>08:02:00</td>", ">3<"}},
		{"broadcast", true, 10, []string{"<th>delivery ratio</th>", "<th>fanout p99</th>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := renderHTML(t, repeated(t, tc.broadcast))
			if got := strings.Count(out, `<svg class="chart"`); got != tc.charts {
				t.Errorf("%d charts, want %d", got, tc.charts)
			}
			checkContains(t, out, tc.want, nil)
			checkSelfContained(t, out)
		})
	}
	if out := renderHTML(t, richResult(t, false)); strings.Contains(out, "Repetitions") {
		t.Error("a single run shows a repetitions section")
	}
}

func TestHTMLOverlay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		broadcast bool
		edit      func(b *result.Result)
		charts    int
		want      []string
		notWant   []string
	}{
		{
			name: "echo", charts: 3 + 2*5,
			want: []string{
				"<title>sockbench comparison: &lt;base&gt;.json vs new&amp;.json</title>",
				"<th>&lt;base&gt;.json</th><th>new&amp;.json</th>", // labels head the columns, escaped
				"<td>latency p99</td>", "<th>significance</th>",
				"~ means no significant change",
				"&lt;base&gt;.json: latency", "new&amp;.json: service time", "new&amp;.json: p99", "&lt;base&gt;.json: receive rate",
				"Latency distribution of both runs", "latency (ms)", "rate (msg/s)", "time since start (s)",
				"<details><summary>the report of &lt;base&gt;.json alone</summary>",
			},
			notWant: []string{"<base>", "Fan-out completion of both", "new&amp;.json: Saturated"},
		},
		{
			name: "broadcast, one saturated", broadcast: true, charts: 4 + 2*8,
			edit: func(b *result.Result) { b.Self.Saturated = true },
			want: []string{"Fan-out completion of both runs", "new&amp;.json: fan-out completion", "<td>delivery ratio</td>",
				"new&amp;.json: Saturated: the load generator", "WARNING: the new run was limited by the load generator"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := richResult(t, tc.broadcast), richResult(t, tc.broadcast)
			b.Histograms[result.Latency] = spread(t, 20000, 40e3, 20e6)
			if tc.edit != nil {
				tc.edit(b)
			}
			out := renderOverlay(t, Labelled{"<base>.json", a}, Labelled{"new&.json", b})
			if got := strings.Count(out, `<svg class="chart"`); got != tc.charts {
				t.Errorf("%d charts, want %d", got, tc.charts)
			}
			checkContains(t, out, tc.want, tc.notWant)
			checkSelfContained(t, out)
		})
	}
}
