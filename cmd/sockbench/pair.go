package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
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

// runPair runs two specs one after the other (each --count times), prints
// each summary, then the two side by side with ratios, and writes both
// results: --out with "-LABEL" before the extension, or the default names.
// Thresholds are checked against each; exit 1 if any failed on either.
func runPair(ctx context.Context, arg string, o scenarios.Overrides, f runFlags, stdout, stderr io.Writer) error {
	sides, title, err := pairSides(arg, o, f)
	if err != nil {
		return err
	}
	var runs [2]*result.Result
	for i, s := range sides {
		fmt.Fprintf(stderr, "sockbench: %s run (%d of 2)\n", s.label, i+1)
		out := ""
		if f.out != "" {
			ext := filepath.Ext(f.out)
			out = strings.TrimSuffix(f.out, ext) + "-" + s.label + ext
		}
		side := f
		if f.html != "" {
			side.html = strings.TrimSuffix(f.html, filepath.Ext(f.html)) + "-" + s.label + filepath.Ext(f.html)
		}
		r, err := execute(ctx, s.spec, side, out, stdout, stderr)
		if err != nil {
			return err
		}
		if r.Interrupted || r.Aborted != nil {
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
	// CI outputs: the thresholds of both runs, the table in the summary.
	if err := f.ci.writeRun(runs[1]); err != nil {
		return err
	}
	if err := f.ci.writeCompare(t, title); err != nil {
		return err
	}
	for _, r := range runs {
		if err := verdict(r); err != nil {
			return err
		}
	}
	return nil
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
