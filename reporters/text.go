// Package reporters renders a result.Result for people and machines. Each
// format is a function of (io.Writer, *result.Result).
package reporters

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sockbench/sockbench/internal/result"
)

// Text writes the human summary: what ran, the latency spectrum of each
// histogram, the counters with the accounting identity, errors by class and
// the harness's self-check.
func Text(w io.Writer, r *result.Result) error {
	var b strings.Builder
	p := r.Plan
	fmt.Fprintf(&b, "sockbench %s: %s\n", r.Env.Sockbench, p.Name)
	target := p.Target
	if p.Embedded {
		target += " (embedded reference server)"
	}
	fmt.Fprintf(&b, "  target     %s\n", target)
	mode := "open loop: latency from the intended send time (coordinated omission corrected)"
	if p.Mode == "closed" {
		mode = "CLOSED LOOP: each send waits for a reply; latency equals service time and hides queueing"
	}
	fmt.Fprintf(&b, "  transport  %s%s, engine %s\n", p.Transport, framing(p.Framing), p.Engine)
	fmt.Fprintf(&b, "  mode       %s\n", mode)
	win := r.Window
	fmt.Fprintf(&b, "  window     %s measured after %s ramp and %s warm-up (excluded)\n",
		dur(win.EndNs-win.StartNs), dur(win.RampEndNs), dur(p.WarmupNs))
	if n := len(r.Repetitions); n > 0 {
		fmt.Fprintf(&b, "  repeated   %d measured windows (--count), fresh connections each; the figures below merge all of them, %s measured in total\n", n, dur(int64(r.MeasuredSeconds()*1e9)))
	}
	for _, ph := range r.Phases {
		fmt.Fprintf(&b, "  phase      %-10s %s, %d conns, %s, %d B\n", ph.Name, dur(ph.EndNs-ph.StartNs), ph.Conns, phaseLoad(ph), ph.Size)
	}
	for _, n := range stopNotices(r) {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcount\tmin\tp50\tp90\tp99\tp99.9\tp99.99\tmax\tmean\t")
	for _, name := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		h := r.Histograms[name]
		if h == nil || (name == result.SendLag && p.Mode == "closed") { // closed loop has no schedule to lag
			continue
		}
		if h.Count == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t-\t-\t-\t-\t\n", name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, h.Count,
			dur(h.Min), dur(h.P50), dur(h.P90), dur(h.P99), dur(h.P999), dur(h.P9999), dur(h.Max), dur(int64(h.Mean)))
	}
	tw.Flush()
	b.WriteString("\n")

	c := r.Counters
	if r.Broadcast != nil {
		textRooms(&b, r.Broadcast)
	}
	for _, l := range counterLines(r) {
		fmt.Fprintf(&b, "  %-10s %s\n", l.K, l.V)
	}
	fmt.Fprintf(&b, "  harness    cpu %.0f%% of %d cores", r.Self.CPUPercent, r.Env.CPUs)
	if lag := r.Histograms[result.SendLag]; lag != nil && lag.Count > 0 && p.Mode != "closed" {
		fmt.Fprintf(&b, ", send lag p99 %s max %s", dur(lag.P99), dur(lag.Max))
	}
	if r.Self.Saturated {
		b.WriteString(", SATURATED: the load generator limited this run")
	}
	b.WriteString("\n")
	if s := r.Self; s.PeakConns > 0 && s.RSSPeakBytes >= s.RSSStartBytes {
		fmt.Fprintf(&b, "  memory     rss %s at start, %s with %d conns open: %s per connection\n",
			bytesIEC(s.RSSStartBytes), bytesIEC(s.RSSPeakBytes), s.PeakConns, bytesIEC(s.RSSPerConnBytes))
	} else if s.PeakConns > 0 {
		fmt.Fprintf(&b, "  memory     rss %s at start, %s with %d conns open: not a per-connection figure (an earlier run in this process left more resident at the start)\n",
			bytesIEC(s.RSSStartBytes), bytesIEC(s.RSSPeakBytes), s.PeakConns)
	}
	if c.Late > 0 {
		fmt.Fprintf(&b, "  note       %d replies came after the loss timeout (%s) and are counted lost, not in the latency figures; raise --timeout to measure them\n", c.Late, dur(p.TimeoutNs))
	}
	for _, w := range r.Self.Warnings {
		fmt.Fprintf(&b, "  note       %s\n", w)
	}
	for _, w := range targetWarnings(r) {
		fmt.Fprintf(&b, "  WARNING    %s\n", w)
	}
	if rej := rejectedViews(r); len(rej) > 0 {
		fmt.Fprintf(&b, "  rejected   what the target sent that sockbench could not use (the first %d kept):\n", len(rej))
		for _, x := range rej {
			fmt.Fprintf(&b, "    %s\n", x.Head)
			for _, line := range x.Dump {
				fmt.Fprintf(&b, "      %s\n", line)
			}
		}
	}
	checked := map[string]bool{}
	for _, t := range r.Checks {
		checked[t.Expr] = true
		verdict := "FAIL"
		if t.Pass {
			verdict = "pass"
		}
		fmt.Fprintf(&b, "  threshold  %s  %s: %s", verdict, t.Expr, Measured(t))
		if t.Source != "" {
			fmt.Fprintf(&b, " (%s)", t.Source)
		}
		b.WriteString("\n")
	}
	for _, t := range r.Thresholds {
		if !checked[t] {
			fmt.Fprintf(&b, "  threshold  %s (not checked)\n", t)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func framing(f string) string {
	if f == "" {
		return ""
	}
	return " (" + f + " framing)"
}

func phaseLoad(ph result.PhaseRun) string {
	if ph.InFlight > 0 {
		return fmt.Sprintf("closed loop, %d in flight per conn", ph.InFlight)
	}
	return fmt.Sprintf("%.0f msg/s planned", ph.PlannedRate)
}

// dur formats ns with about three significant digits in a unit people read.
func dur(ns int64) string {
	v := float64(ns)
	switch {
	case v < 999.5:
		return fmt.Sprintf("%dns", ns)
	case v < 999.5e3:
		return sig3(v/1e3) + "us"
	case v < 999.5e6:
		return sig3(v/1e6) + "ms"
	}
	return sig3(v/1e9) + "s"
}

func sig3(v float64) string {
	switch {
	case v < 9.995: // below the point where two decimals round up to 10.00
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 99.95:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// Progress writes one plain line for an interval (CI-log friendly): send
// rate against the interval's planned rate, receive rate, latency p50/p99 and
// the largest send lag of the interval, errors.
func Progress(w io.Writer, iv result.Interval) {
	rate := fmt.Sprintf("%.0f", iv.SendRate)
	if iv.PlannedRate > 0 {
		rate += fmt.Sprintf("/%.0f", iv.PlannedRate)
	}
	fmt.Fprintf(w, "[%6.1fs] %-8s conns %d  send %s msg/s  recv %.0f msg/s  p50 %s  p99 %s  lag %s  lost %d  errors %d\n",
		float64(iv.TNs)/1e9, iv.Phase, iv.OpenConns, rate, iv.RecvRate, ivDur(iv.P50Ns, iv.Received), ivDur(iv.P99Ns, iv.Received), ivDur(iv.SendLagMaxNs, iv.Sent), iv.Lost, iv.Errors)
}

// ivDur is an interval's figure from n samples: "-" when there are none, as
// in the summary's table.
func ivDur(ns, n int64) string {
	if n == 0 {
		return "-"
	}
	return dur(ns)
}

// bytesIEC formats a byte count with a binary unit: 512 B, 1.5 KiB, 20.3 MiB.
func bytesIEC(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// Measured formats a threshold's measured value in its unit, or why there
// is none.
func Measured(t result.ThresholdResult) string {
	if t.Reason != "" {
		return "not measurable: " + t.Reason
	}
	if t.Room != "" {
		room := t
		room.Room = ""
		return Measured(room) + " in the worst room, " + t.Room
	}
	switch t.Unit {
	case "ns":
		return "measured " + dur(int64(t.Measured))
	case "ratio":
		return fmt.Sprintf("measured %s%%", sig3(100*t.Measured))
	}
	return fmt.Sprintf("measured %s %s", sig3(t.Measured), t.Unit)
}
