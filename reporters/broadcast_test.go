package reporters

import (
	"strconv"
	"strings"
	"testing"
)

// TestTextBroadcast: the broadcast block comes once, in place of the
// echo run's message line, and the HTML report gives the same accounting.
func TestTextBroadcast(t *testing.T) {
	t.Parallel()
	r := richResult(t, true)
	out := render(t, r)
	const deliveries = "expected 99000, delivered 98990 (99.990%), missing 10, duplicated 1, extra 2, late 3"
	if got := strings.Count(out, deliveries); got != 1 {
		t.Errorf("text holds the deliveries %d times, want once:\n%s", got, out)
	}
	checkContains(t, out, []string{"(10 other rooms)", "fan-out"}, []string{"messages   sent"})
	page := renderHTML(t, r)
	checkContains(t, page, []string{deliveries, "<td>99.980%</td>", "&lt;script&gt;alert(1)&lt;/script&gt;"}, []string{"<th>messages</th>"})
}

// TestTextTablesAligned: in the percentile table and the per-room table
// each column's right edge lines up with its header's on every row.
func TestTextTablesAligned(t *testing.T) {
	t.Parallel()
	out := render(t, richResult(t, true))
	for _, tc := range []struct {
		header string
		skip   int // leading columns with spaces in cells (room names, "latency p50")
	}{{"count", 0}, {"members", 1}} {
		header := tc.header
		var table []string
		for _, block := range strings.Split(out, "\n\n") {
			if lines := strings.Split(block, "\n"); strings.Contains(lines[0], header) && strings.HasPrefix(lines[0], " ") {
				table = lines
			}
		}
		if len(table) < 2 {
			t.Fatalf("no table with %q:\n%s", header, out)
		}
		if tc.skip > 0 { // a left column of names: right-aligned rows are all as long as the header
			for _, line := range table[1:] {
				if line != "" && len(line) != len(table[0]) {
					t.Errorf("row %q is %d bytes, the header %d", line, len(line), len(table[0]))
				}
			}
			continue
		}
		edges := columnEdges(table[0])
		for _, line := range table[1:] {
			if line == "" {
				continue
			}
			got := columnEdges(line)
			if got = got[max(len(got)-len(edges), 0):]; strings.Join(got, ",") != strings.Join(edges, ",") {
				t.Errorf("row %q: column edges %v, header's %v", line, got, edges)
			}
		}
	}
}

// columnEdges are the byte offsets where each space-separated cell ends.
func columnEdges(line string) []string {
	var edges []string
	for i := range line {
		if line[i] != ' ' && (i+1 == len(line) || line[i+1] == ' ') {
			edges = append(edges, strconv.Itoa(i))
		}
	}
	return edges
}
