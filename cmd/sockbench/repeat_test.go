package main

// End-to-end tests of run --count, the CI outputs of run, tcp-vs-udp and
// --against reference, with runs of about a second against the embedded
// server.

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/perf/benchfmt"

	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/scenarios"
	"github.com/sockbench/sockbench/targets"
)

// tiny are the flags of a run of about 0.7 s: 3 connections, 100 msg/s,
// 100 ms warm-up, 500 ms measured.
var tiny = []string{"--conns", "3", "--rate", "100", "--duration", "500ms", "--warmup", "100ms", "--timeout", "200ms", "--quiet"}

// TestRunCount: --count 2 keeps both repetitions, the top level merges
// them, thresholds are checked against the merge, the CI outputs parse, and
// compare reads the repetitions (n=2).
func TestRunCount(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	bench := filepath.Join(dir, "r.bench")
	junit := filepath.Join(dir, "r.xml")
	md := filepath.Join(dir, "r.md")
	page := filepath.Join(dir, "r.html")
	args := append([]string{"run", "echo-tcp", "--count", "2", "--out", out, "--benchfmt", bench, "--junit", junit, "--summary-md", md,
		"--threshold", "p50 < 1ns", "--html", page}, tiny...)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitGate {
		t.Fatalf("exit %d, want %d (p50 < 1ns fails); stderr:\n%s", code, exitGate, stderr)
	}
	if !strings.Contains(stderr, "repetition 2 of 2") || !strings.Contains(stdout, "repeated   2 measured windows") {
		t.Errorf("repetitions not reported:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	r := readResult(t, out)
	checkAccounting(t, r)
	if got, want := len(r.Repetitions), 2; got != want {
		t.Fatalf("%d repetitions, want %d", got, want)
	}
	var sent, recv int64
	var secs float64
	for _, rep := range r.Repetitions {
		sent += rep.Counters.Sent
		recv += rep.Counters.Received
		secs += rep.Seconds
		if rep.Histograms["latency"].Count != rep.Counters.Received {
			t.Errorf("repetition latency count %d, received %d", rep.Histograms["latency"].Count, rep.Counters.Received)
		}
	}
	if r.Counters.Sent != sent || r.Counters.Received != recv || r.Histograms["latency"].Count != recv {
		t.Errorf("merged sent %d received %d latency count %d, want the sums %d and %d", r.Counters.Sent, r.Counters.Received, r.Histograms["latency"].Count, sent, recv)
	}
	if got := r.MeasuredSeconds(); got != secs || secs < 0.9 {
		t.Errorf("measured %.3fs, want the sum %.3fs of two ~0.5s windows", got, secs)
	}
	if b, err := os.ReadFile(page); err != nil || !bytes.Contains(b, []byte("<h2>Repetitions</h2>")) || !bytes.Contains(b, []byte("Latency per repetition")) {
		t.Errorf("run --count 2 --html: no repetitions section (%v)", err)
	}

	// benchfmt: one line per repetition, read by x/perf's reader.
	f, err := os.Open(bench)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := benchfmt.NewReader(f, bench)
	var lines int
	for br.Scan() {
		rec, ok := br.Result().(*benchfmt.Result)
		if !ok {
			if se, isErr := br.Result().(*benchfmt.SyntaxError); isErr {
				t.Fatalf("benchfmt syntax error: %v", se)
			}
			continue
		}
		lines++
		if got, want := string(rec.Name.Full()), "Sockbench/echo-tcp/tcp"; !strings.HasPrefix(got, want) { // the reader drops "Benchmark"
			t.Errorf("benchmark name %q, want prefix %q", got, want)
		}
		units := map[string]bool{}
		for _, v := range rec.Values {
			u := v.OrigUnit
			if u == "" {
				u = v.Unit
			}
			units[u] = true
		}
		for _, u := range []string{"p50-ns", "p99-ns", "msgs/s", "loss-ratio"} {
			if !units[u] {
				t.Errorf("line %d lacks unit %s: %v", lines, u, units)
			}
		}
	}
	if err := br.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != 2 {
		t.Errorf("%d benchmark lines, want 2 (one per repetition)", lines)
	}

	// JUnit: the built-in's thresholds and the flag's, p50 < 1ns failed (and
	// a latency gate the machine was too slow for, if any).
	failed := checkGateFailing(t, code, stderr, []string{"p50 < 1ns"}, r)
	s := readJUnit(t, junit).Suites[0]
	if want := builtinGates(t, "echo-tcp") + 1; s.Tests != want || s.Failures != failed {
		t.Errorf("junit tests %d failures %d, want %d and %d", s.Tests, s.Failures, want, failed)
	}
	mdText, _ := os.ReadFile(md)
	for _, want := range []string{"### sockbench echo-tcp: **FAILED**", "in 2 repetitions", "| `p50 < 1ns` |", "**FAIL**"} {
		if !bytes.Contains(mdText, []byte(want)) {
			t.Errorf("summary lacks %q:\n%s", want, mdText)
		}
	}

	// compare reads the repetitions: n=2 on each side.
	code, stdout, stderr = runCLI(t, "compare", out, out)
	if code != exitOK || !strings.Contains(stdout, "n=2") {
		t.Errorf("compare: exit %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestRunPairs: tcp-vs-udp and --against reference run twice and print
// the two side by side; misuse is exit 2.
func TestRunPairs(t *testing.T) {
	srv, err := targets.Serve(targets.Config{TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
		files  []string
		html   []string // in the one HTML report, r.html
	}{
		{name: "tcp-vs-udp", args: []string{"tcp-vs-udp"}, code: exitOK,
			stdout: []string{"tcp-vs-udp: tcp and udp side by side (ratio = udp / tcp)", "metric", "tcp", "udp", "ratio", "latency p99", "reordered", "loss", "transports differ: base tcp, new udp"},
			files:  []string{"r-tcp.json", "r-udp.json"},
			html:   []string{"<h1>sockbench comparison: tcp-vs-udp</h1>", "tcp: latency", "udp: latency", "<th>ratio</th>"}},
		{name: "against reference", args: []string{"echo-tcp", "--against", "reference", "--target", srv.URL("tcp")}, code: exitOK,
			stdout: []string{"echo-tcp against reference: reference and target side by side (ratio = target / reference)", "throughput"},
			files:  []string{"r-reference.json", "r-target.json"},
			html:   []string{"<h1>sockbench comparison: echo-tcp against reference</h1>", "reference: p99", "target: receive rate"}},
		{name: "against without a target", args: []string{"echo-tcp", "--against", "reference"}, code: exitUsage,
			stderr: "--against reference needs a --target"},
		{name: "against something else", args: []string{"echo-tcp", "--against", "nginx", "--target", srv.URL("tcp")}, code: exitUsage,
			stderr: `--against "nginx": the only yardstick is 'reference'`},
		{name: "tcp-vs-udp with a target", args: []string{"tcp-vs-udp", "--target", srv.URL("tcp")}, code: exitUsage,
			stderr: "--target: tcp-vs-udp runs against the embedded reference server"},
		{name: "count 0", args: []string{"echo", "--count", "0"}, code: exitUsage, stderr: "--count 0: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append(append([]string{"run"}, tc.args...), "--out", filepath.Join(dir, "r.json"), "--html", filepath.Join(dir, "r.html"))
			code, stdout, stderr := runCLI(t, append(args, tiny...)...)
			if code != tc.code && (tc.code != exitOK || code != exitGate) {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
			var rs []*result.Result
			for _, f := range tc.files {
				r := readResult(t, filepath.Join(dir, f))
				checkAccounting(t, r)
				rs = append(rs, r)
			}
			if tc.code == exitOK {
				checkGate(t, code, stderr, rs...)
			}
			page, _ := os.ReadFile(filepath.Join(dir, "r.html"))
			for _, s := range tc.html {
				if !bytes.Contains(page, []byte(s)) {
					t.Errorf("r.html lacks %q", s)
				}
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "r-*.html")); len(m) > 0 {
				t.Errorf("a report per side: %v; want the one overlay", m)
			}
		})
	}
}

// TestRunAgainstInterleaved: with --count 2 the reference and target
// repetitions take turns (reference, target, reference, target), each side's
// result holds its two repetitions, and their start times alternate.
func TestRunAgainstInterleaved(t *testing.T) {
	srv, err := targets.Serve(targets.Config{TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	args := append([]string{"run", "echo-tcp", "--against", "reference", "--target", srv.URL("tcp"), "--count", "2",
		"--out", filepath.Join(dir, "r.json")}, tiny...)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK && code != exitGate {
		t.Fatalf("exit %d, want %d (or %d for a latency gate the machine was too slow for); stdout:\n%s\nstderr:\n%s", code, exitOK, exitGate, stdout, stderr)
	}
	order := regexp.MustCompile(`sockbench: (\w+) repetition (\d) of 2`).FindAllStringSubmatch(stderr, -1)
	var got []string
	for _, m := range order {
		got = append(got, m[1]+" "+m[2])
	}
	if want := "reference 1, target 1, reference 2, target 2"; strings.Join(got, ", ") != want {
		t.Errorf("repetitions ran in the order %q, want %q", strings.Join(got, ", "), want)
	}
	ref := readResult(t, filepath.Join(dir, "r-reference.json"))
	tgt := readResult(t, filepath.Join(dir, "r-target.json"))
	if len(ref.Repetitions) != 2 || len(tgt.Repetitions) != 2 {
		t.Fatalf("repetitions: reference %d, target %d; want 2 each", len(ref.Repetitions), len(tgt.Repetitions))
	}
	starts := []time.Time{ref.Repetitions[0].StartedAt, tgt.Repetitions[0].StartedAt, ref.Repetitions[1].StartedAt, tgt.Repetitions[1].StartedAt}
	for i := 1; i < len(starts); i++ {
		if !starts[i].After(starts[i-1]) {
			t.Errorf("repetition starts %v do not alternate reference, target", starts)
		}
	}
	for _, r := range []*result.Result{ref, tgt} {
		checkAccounting(t, r)
	}
	checkGate(t, code, stderr, ref, tgt)
	if !strings.Contains(stdout, "echo-tcp against reference: reference and target side by side") {
		t.Errorf("stdout lacks the side-by-side table:\n%s", stdout)
	}
}

// TestRunPairJUnit: a pair's JUnit file holds both runs' thresholds and
// the comparison, so a failing threshold of either side shows in CI.
func TestRunPairJUnit(t *testing.T) {
	dir := t.TempDir()
	junit := filepath.Join(dir, "j.xml")
	args := append([]string{"run", "tcp-vs-udp", "--threshold", "p99<1ns", "--junit", junit, "--out", filepath.Join(dir, "p.json")}, tiny...)
	code, _, stderr := runCLI(t, args...)
	if code != exitGate {
		t.Fatalf("exit %d, want %d: %s", code, exitGate, stderr)
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Failures int    `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("%v:\n%s", err, data)
	}
	failures := 0
	for _, s := range suites.Suites {
		failures += s.Failures
	}
	// p99<1ns on each side, and a built-in's latency gate the machine was
	// too slow for, if any.
	failed := checkGateFailing(t, code, stderr, []string{"p99<1ns"},
		readResult(t, filepath.Join(dir, "p-tcp.json")), readResult(t, filepath.Join(dir, "p-udp.json")))
	if len(suites.Suites) != 3 || failures != failed || failed < 2 {
		t.Errorf("%d suites with %d failures, want 3 (tcp, udp, compare) with %d (p99<1ns on each side, and %d more):\n%s", len(suites.Suites), failures, failed, failed-2, data)
	}
}

// TestRunCountCut: a repetition that cannot be run (here: interrupted
// before it began) ends the sequence, and the repetitions measured before
// it are merged, written and marked interrupted, not lost.
func TestRunCountCut(t *testing.T) {
	conns, rate, dur, warm, timeout := 3, 100.0, 500*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	spec, err := buildSpec("echo", scenarios.Overrides{Conns: &conns, Rate: &rate, Duration: &dur, Warmup: &warm, Timeout: &timeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := runFlags{count: 3}
	x, err := prepare(spec, f, filepath.Join(t.TempDir(), "r.json"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOn{text: "repetition 2 of 3", cancel: cancel}
	r, err := runRepeated(ctx, spec, x.p, x.lim, x.opts, 3, stderr)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || len(r.Repetitions) != 1 || r.Counters.Received == 0 {
		t.Errorf("interrupted %v, %d repetitions, received %d: want the first kept and marked interrupted", r.Interrupted, len(r.Repetitions), r.Counters.Received)
	}
}

// cancelOn cancels when text is written to it.
type cancelOn struct {
	text   string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.text) {
		c.cancel()
	}
	return len(p), nil
}
