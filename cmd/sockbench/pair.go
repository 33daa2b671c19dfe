package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/reporters"
	"github.com/sockbench/sockbench/scenarios"
)

// tcpVsUDP is the built-in pair that runs the echo workload over TCP and
// then UDP (echo-tcp and echo-udp, with the same flags) and shows them side
// by side.
const tcpVsUDP = "tcp-vs-udp"

// side is one of the two runs of a pair.
type side struct {
	label string // column head: "reference", "target", "tcp", "udp"
	spec  *scenarios.Spec
}

// runPair runs two specs one after the other (with --count N, their
// repetitions taking turns: see runInterleaved), prints
// each summary, then the two side by side with ratios, and writes both
// results: --out with "-LABEL" before the extension, or the default names.
// --html writes one report of both runs overlaid.
// Thresholds are checked against each; exit 1 if any failed on either.
func runPair(ctx context.Context, arg string, o scenarios.Overrides, f runFlags, stdout, stderr io.Writer) error {
	sides, title, err := pairSides(arg, o, f)
	if err != nil {
		return err
	}
	var runs [2]*result.Result
	if f.count > 1 {
		if runs, err = runInterleaved(ctx, sides, f, stdout, stderr); err != nil {
			return err
		}
	}
	for i, s := range sides {
		if runs[i] != nil {
			continue // interleaved
		}
		fmt.Fprintf(stderr, "sockbench: %s run (%d of 2)\n", s.label, i+1)
		side, out := sideFlags(f, s.label)
		r, err := execute(ctx, s.spec, side, out, stdout, stderr)
		if err != nil {
			return err
		}
		if r.Interrupted || r.Aborted != nil || r.Stopped != nil {
			return verdict(r)
		}
		runs[i] = r
		fmt.Fprintln(stdout)
	}
	t, err := compare.Compare(runs[0], runs[1], sides[0].label, sides[1].label, nil)
	if err != nil {
		return refusal(err)
	}
	t.Ratios = true
	t.Drop(compare.NoteScenario) // a pair runs two scenarios (echo-tcp, echo-udp) by design
	t.Drop(compare.NoteTarget)   // and --against two targets
	fmt.Fprintf(stdout, "%s: %s side by side (ratio = %s / %s)\n\n", title, sides[0].label+" and "+sides[1].label, sides[1].label, sides[0].label)
	if err := t.Text(stdout); err != nil {
		return err
	}
	if f.html != "" {
		a, b := reporters.Labelled{Label: sides[0].label, Result: runs[0]}, reporters.Labelled{Label: sides[1].label, Result: runs[1]}
		if err := createReport(f.html, "html", func(w io.Writer) error { return reporters.HTMLOverlay(w, title, a, b, t) }); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "sockbench: HTML report of both runs written to %s\n", f.html)
	}
	// CI outputs: the thresholds of both runs, the table in the summary.
	if err := f.ci.writePair(runs, t, title); err != nil {
		return err
	}
	// A run that could not be carried out (exit 3) outranks a failed gate.
	var gate error
	for _, r := range runs {
		if err := verdict(r); err != nil {
			if _, ok := err.(*gateError); !ok {
				return err
			}
			if gate == nil {
				gate = err
			}
		}
	}
	return gate
}

// sideFlags are the run flags of one side of a pair and its result file:
// --out with "-LABEL" before the extension; no --html (runPair writes one
// report of both).
func sideFlags(f runFlags, label string) (runFlags, string) {
	out := ""
	if f.out != "" {
		ext := filepath.Ext(f.out)
		out = strings.TrimSuffix(f.out, ext) + "-" + label + ext
	}
	f.html = ""
	return f, out
}

// runInterleaved runs the two sides' --count repetitions in turn (first,
// second, first, second, ...), so that whatever drifts on the machine
// during the sequence (other load, CPU frequency, a warming cache) falls on
// both sides alike rather than on the side that ran last. Each side's
// repetitions are merged as runRepeated merges them, then its summary is
// printed and its result written. An interrupted or aborted repetition ends
// the sequence; the sides' results are written with what ran, and the
// error is that repetition's verdict.
func runInterleaved(ctx context.Context, sides [2]side, f runFlags, stdout, stderr io.Writer) ([2]*result.Result, error) {
	var (
		runs    [2]*result.Result
		xs      [2]*prepared
		rps     [2]*repeater
		stopped *result.Result
	)
	for i, s := range sides {
		sf, out := sideFlags(f, s.label)
		x, err := prepare(s.spec, sf, out, stderr)
		if err != nil {
			return runs, err
		}
		xs[i], rps[i] = x, &repeater{spec: s.spec, p: x.p, lim: x.lim, opts: x.opts}
	}
	for n := 1; n <= f.count && stopped == nil; n++ {
		for i, s := range sides {
			fmt.Fprintf(afterStatus{xs[i].progress, stderr}, "sockbench: %s repetition %d of %d (taking turns with the %s)\n", s.label, n, f.count, sides[1-i].label)
			r, err := rps[i].once(ctx)
			xs[i].progress.Done()
			if err != nil {
				if len(rps[0].runs)+len(rps[1].runs) == 0 {
					return runs, err
				}
				// Keep what both sides measured: mark the last run
				// interrupted, so that the sequence ends as an interrupt does.
				last := rps[i]
				if len(last.runs) == 0 {
					last = rps[1-i]
				}
				last.cut(err, stderr)
				stopped = last.runs[len(last.runs)-1]
				break
			}
			if r.Interrupted || r.Aborted != nil || r.Stopped != nil {
				stopped = r
				break
			}
		}
	}
	for i := range sides {
		if len(rps[i].runs) == 0 {
			continue // stopped before this side's first repetition
		}
		m, err := rps[i].merged()
		if err != nil {
			return runs, err
		}
		if runs[i], err = xs[i].finish(m, stdout, stderr); err != nil {
			return runs, err
		}
		fmt.Fprintln(stdout)
	}
	if stopped != nil {
		return runs, verdict(stopped)
	}
	return runs, nil
}

// pairSides builds the two specs of tcp-vs-udp or of --against reference.
func pairSides(arg string, o scenarios.Overrides, f runFlags) ([2]side, string, error) {
	if arg == tcpVsUDP {
		if f.against != "" {
			return [2]side{}, "", &usageError{"--against: tcp-vs-udp already runs two transports against the reference server; use one or the other"}
		}
		if o.Target != nil {
			return [2]side{}, "", &usageError{"--target: tcp-vs-udp runs against the embedded reference server; for your own server run echo-tcp and echo-udp with --target and then 'sockbench compare tcp.json udp.json'"}
		}
		tcp, err := buildSpec("echo-tcp", o, f.thresholds)
		if err != nil {
			return [2]side{}, "", err
		}
		udp, err := buildSpec("echo-udp", o, f.thresholds)
		if err != nil {
			return [2]side{}, "", err
		}
		return [2]side{{"tcp", tcp}, {"udp", udp}}, "tcp-vs-udp", nil
	}
	if f.against != "reference" {
		return [2]side{}, "", &usageError{fmt.Sprintf("--against %q: the only yardstick is 'reference' (the embedded reference server)", f.against)}
	}
	target, err := buildSpec(arg, o, f.thresholds)
	if err != nil {
		return [2]side{}, "", err
	}
	if target.Target == "" {
		return [2]side{}, "", &usageError{"--against reference needs a --target (or a scenario with a target) to measure against the reference server"}
	}
	// The same scenario, re-read, with the target cleared: the embedded
	// server of the target's transport. wss falls back to ws (the reference
	// server does not speak TLS).
	ref, err := buildSpec(arg, o, f.thresholds)
	if err != nil {
		return [2]side{}, "", err
	}
	p, err := target.Plan(scenarios.Limits{})
	if err != nil {
		return [2]side{}, "", err
	}
	ref.Target, ref.Insecure, ref.Transport = "", false, p.Target.Transport
	return [2]side{{"reference", ref}, {"target", target}}, target.Name + " against reference", nil
}
