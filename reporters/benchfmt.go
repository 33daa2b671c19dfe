package reporters

import (
	"fmt"
	"io"
	"strings"

	"github.com/sockbench/sockbench/internal/result"
)

// Benchfmt writes r in the Go benchmark format, one line per repetition (one
// line for a run without --count), so that benchstat and continuous
// benchmarking services that read `go test -bench` output can read it:
//
//	BenchmarkSockbench/echo/ws-2  1  21300 p50-ns  35500 p90-ns  57100 p99-ns ...  10000 msgs/s ...
//
// The name is the scenario and transport, with GOMAXPROCS as the usual -N
// suffix. Units: latency p50/p90/p99/p99.9/max (p50-ns ...), service time
// p50/p99 (svc-p50-ns, svc-p99-ns), send lag p99 (lag-p99-ns), replies per
// measured second (msgs/s), lost and errored messages over sent
// (loss-ratio, errors-ratio). Figures a repetition does not have are left out.
func Benchfmt(w io.Writer, r *result.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: %s\ngoarch: %s\npkg: github.com/sockbench/sockbench\n", r.Env.OS, r.Env.Arch)
	fmt.Fprintf(&b, "sockbench: %s\nengine: %s\nmode: %s\n", r.Env.Sockbench, r.Plan.Engine, r.Plan.Mode)
	name := "BenchmarkSockbench/" + benchName(r.Plan.Name) + "/" + r.Plan.Transport
	if r.Env.GOMAXPROCS > 1 {
		name += fmt.Sprintf("-%d", r.Env.GOMAXPROCS)
	}
	for _, rep := range r.Samples() {
		b.WriteString(name + " 1")
		if s, ok := rep.Histograms[result.Latency]; ok && s.Count > 0 {
			fmt.Fprintf(&b, " %d p50-ns %d p90-ns %d p99-ns %d p99.9-ns %d max-ns", s.P50, s.P90, s.P99, s.P999, s.Max)
		}
		if s, ok := rep.Histograms[result.ServiceTime]; ok && s.Count > 0 {
			fmt.Fprintf(&b, " %d svc-p50-ns %d svc-p99-ns", s.P50, s.P99)
		}
		if s, ok := rep.Histograms[result.SendLag]; ok && s.Count > 0 {
			fmt.Fprintf(&b, " %d lag-p99-ns", s.P99)
		}
		if rep.Seconds > 0 {
			fmt.Fprintf(&b, " %.1f msgs/s", float64(rep.Counters.Received)/rep.Seconds)
		}
		if c := rep.Counters; c.Sent > 0 {
			fmt.Fprintf(&b, " %g loss-ratio %g errors-ratio", float64(c.Lost)/float64(c.Sent), float64(c.ErrorsTotal())/float64(c.Sent))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// benchName makes a scenario name safe as a benchmark name element: no
// spaces, no slashes.
func benchName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '/' || r == '\t' {
			return '_'
		}
		return r
	}, s)
}
