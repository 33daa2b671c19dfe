package main

// End-to-end tests of `sockbench compare` on hand-made result files: the
// table, significance, --fail-on and its exit codes, refusals and notes,
// bad files, and the CI outputs.

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/result"
)

// fakeRun describes a hand-made result: one repetition per latency p99
// value (ns); the other figures are derived from it.
type fakeRun struct {
	p99        []int64 // latency p99 per repetition, ns
	received   int64   // replies per repetition in its 1 s window (default 1000)
	transport  string  // default tcp
	mode       string  // default open
	scenario   string  // default echo-tcp
	host       string  // default ci-1
	schema     int     // default result.SchemaVersion
	lostPerRep int64
}

// writeFake writes the result f describes and returns its path.
func writeFake(t *testing.T, dir, name string, f fakeRun) string {
	t.Helper()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&f.transport, "tcp")
	def(&f.mode, "open")
	def(&f.scenario, "echo-tcp")
	def(&f.host, "ci-1")
	if f.received == 0 {
		f.received = 1000
	}
	var runs []*result.Result
	for _, p99 := range f.p99 {
		hists := map[string]*result.Histogram{}
		for _, hn := range []string{result.Latency, result.ServiceTime, result.SendLag, result.Connect} {
			h := result.NewHistogram()
			for i := int64(0); i < 100; i++ {
				v := p99 / 2
				if i >= 98 {
					v = p99
				}
				if err := h.RecordValue(v); err != nil {
					t.Fatal(err)
				}
			}
			x, err := result.FromHDR(h)
			if err != nil {
				t.Fatal(err)
			}
			hists[hn] = x
		}
		runs = append(runs, &result.Result{
			SchemaVersion: result.SchemaVersion, Scenario: json.RawMessage(`{}`),
			Plan:       result.PlanInfo{Name: f.scenario, Transport: f.transport, Mode: f.mode, Engine: "epoll", Embedded: true},
			Env:        result.Env{Sockbench: "dev", Host: f.host, CPUs: 2, GOMAXPROCS: 2},
			StartedAt:  time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC),
			Window:     result.Window{StartNs: 1e9, EndNs: 2e9, DrainEndNs: 2.3e9},
			Counters:   result.Counters{ConnsOpened: 5, Sent: f.received + f.lostPerRep, Received: f.received, Lost: f.lostPerRep},
			Histograms: hists,
		})
	}
	r := runs[0]
	if len(runs) > 1 {
		var err error
		if r, err = result.Merge(runs); err != nil {
			t.Fatal(err)
		}
	}
	if f.schema != 0 {
		r.SchemaVersion = f.schema
	}
	path := filepath.Join(dir, name)
	if err := result.WriteFile(path, r); err != nil {
		t.Fatal(err)
	}
	return path
}

// tens turns figures into tens of ns (100 -> 1000 ns): below 2048 ns a
// histogram holds every value exactly, so the percentiles are these.
func tens(vs ...int64) []int64 {
	out := make([]int64, len(vs))
	for i, v := range vs {
		out[i] = v * 10
	}
	return out
}

func TestCompare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		base, new fakeRun
		args      []string
		code      int
		stdout    []string // substrings of stdout
		stderr    []string // substrings of stderr
	}{
		{name: "same, n=1", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100)},
			code: exitOK, stdout: []string{"latency p99", "1.00us", "0.00%", "~ (n=1)", "significance cannot be judged"}},
		{name: "n=1 regression beyond the limit fails as-is", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(150)},
			args: []string{"--fail-on", "p99:+10%"},
			code: exitGate, stdout: []string{"+50.00%", "FAIL (limit +10%)"},
			stderr: []string{"FAIL latency.p99 regressed +50.00% (base 1.00us, new 1.50us), beyond the --fail-on limit p99:+10%; n=1+1: significance not judged", "1 --fail-on limits failed: latency.p99"}},
		{name: "n=1 regression within the limit", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(105)},
			args: []string{"--fail-on", "p99:+10%"}, code: exitOK, stdout: []string{"+5.00%", "ok (limit +10%)"}},
		{name: "n=5 significant regression", base: fakeRun{p99: tens(100, 101, 102, 103, 104)}, new: fakeRun{p99: tens(150, 151, 152, 153, 154)},
			args: []string{"--fail-on", "p99:+10%,throughput:-5%"},
			code: exitGate, stdout: []string{"p=0.008 n=5", "FAIL (limit +10%)", "ok (limit -5%)"}, stderr: []string{"FAIL latency.p99", "p=0.008 n=5"}},
		{name: "n=5 noise is not a regression", base: fakeRun{p99: tens(100, 130, 102, 133, 104)}, new: fakeRun{p99: tens(101, 131, 103, 134, 105)},
			args: []string{"--fail-on", "p99:+0.5%"},
			code: exitOK, stdout: []string{"~ (p=", "ok, not significant (limit +0.5%)"}},
		{name: "n=3 cannot be significant", base: fakeRun{p99: tens(100, 101, 102)}, new: fakeRun{p99: tens(150, 151, 152)},
			args: []string{"--fail-on", "p99:+10%"},
			code: exitOK, stdout: []string{"~ (p=0.100 n=3)", "need >= 4 samples"}},
		{name: "throughput drop", base: fakeRun{p99: tens(100), received: 1000}, new: fakeRun{p99: tens(100), received: 900},
			args: []string{"--fail-on", "throughput:-5%"},
			code: exitGate, stdout: []string{"1000 msg/s", "900 msg/s", "-10.00%"}, stderr: []string{"FAIL throughput regressed -10.00%"}},
		{name: "loss from zero", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100), lostPerRep: 10},
			args: []string{"--fail-on", "loss:+50%"},
			code: exitGate, stdout: []string{"+inf% (base 0)"}, stderr: []string{"FAIL loss regressed"}},
		{name: "transports differ: a note", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100), transport: "udp", scenario: "echo-udp"},
			code: exitOK, stdout: []string{"transports differ: base tcp, new udp", `WARNING: scenarios differ: base "echo-tcp", new "echo-udp"`}},
		{name: "machines differ: a warning", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100), host: "ci-2"},
			code: exitOK, stdout: []string{"WARNING: machines differ: base ci-1 (2 cpus, GOMAXPROCS 2), new ci-2"}},
		{name: "open vs closed loop refused", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100), mode: "closed"},
			code: exitUsage, stderr: []string{"cannot compare: base ran open loop and new closed loop"}},
		{name: "newer schema", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100), schema: result.SchemaVersion + 1},
			code: exitUsage, stderr: []string{fmt.Sprintf("new.json: schema version %d", result.SchemaVersion+1), "upgrade sockbench"}},
		{name: "threshold syntax in --fail-on", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100)}, args: []string{"--fail-on", "p99<20mz"},
			code: exitUsage, stderr: []string{`--fail-on "p99<20mz": this is a threshold`}},
		{name: "unknown metric", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100)}, args: []string{"--fail-on", "p99:+10%,latncy.p99:+5%"},
			code: exitUsage, stderr: []string{`--fail-on "latncy.p99:+5%": unknown metric "latncy.p99"`}},
		{name: "no percent", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100)}, args: []string{"--fail-on", "p99:+10"},
			code: exitUsage, stderr: []string{`--fail-on "p99:+10": limit "+10" is not a percentage`}},
		{name: "wrong direction", base: fakeRun{p99: tens(100)}, new: fakeRun{p99: tens(100)}, args: []string{"--fail-on", "throughput:+5%"},
			code: exitUsage, stderr: []string{`throughput gets worse by a fall; write throughput:-5%`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			base := writeFake(t, dir, "base.json", tc.base)
			next := writeFake(t, dir, "new.json", tc.new)
			code, stdout, stderr := runCLI(t, append([]string{"compare", base, next}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestCompareBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFake(t, dir, "good.json", fakeRun{p99: tens(100)})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := writeFile(t, "truncated.json", string(data[:len(data)/2]))
	notResult := writeFile(t, "other.json", `{"hello": 1}`)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"truncated", []string{good, truncated}, "truncated.json: not a sockbench result (truncated or corrupted JSON)"},
		{"not a result", []string{notResult, good}, "other.json: not a sockbench result: no schema_version"},
		{"missing", []string{good, filepath.Join(dir, "nope.json")}, "nope.json: no such file"},
		{"one file", []string{good}, "compare takes two result files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"compare"}, tc.args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
		})
	}
}

// junitDoc is what a CI system reads from --junit.
type junitDoc struct {
	Suites []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junitDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s does not parse as XML: %v\n%s", path, err, data)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d test suites, want 1:\n%s", len(doc.Suites), data)
	}
	return doc
}

// TestCompareCIOutputs: one JUnit test case per limit, failures marked; the
// Markdown table to --summary-md, or appended to $GITHUB_STEP_SUMMARY.
func TestCompareCIOutputs(t *testing.T) {
	dir := t.TempDir()
	base := writeFake(t, dir, "base.json", fakeRun{p99: tens(100)})
	next := writeFake(t, dir, "new.json", fakeRun{p99: tens(150), received: 990})
	junit := filepath.Join(dir, "out", "compare.xml")
	md := filepath.Join(dir, "summary.md")
	code, _, stderr := runCLI(t, "compare", base, next, "--fail-on", "p99:+10%,throughput:-5%", "--junit", junit, "--summary-md", md)
	if code != exitGate {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitGate, stderr)
	}
	doc := readJUnit(t, junit)
	s := doc.Suites[0]
	if s.Tests != 2 || s.Failures != 1 {
		t.Errorf("tests %d failures %d, want 2 and 1", s.Tests, s.Failures)
	}
	for _, c := range s.Cases {
		if failed := c.Failure != nil; failed != (c.Name == "p99:+10%") {
			t.Errorf("case %q failed=%v", c.Name, failed)
		}
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### sockbench compare: base.json vs new.json", "**1 limits FAILED**", "| metric | base base.json | new new.json | change | significance | limit |", "| latency p99 | 1.00us | 1.50us | +50.00% | ~ (n=1) | **FAIL (limit +10%)** |"} {
		if !strings.Contains(string(mdText), want) {
			t.Errorf("summary lacks %q:\n%s", want, mdText)
		}
	}

	// $GITHUB_STEP_SUMMARY is appended to when --summary-md is not given.
	step := writeFile(t, "step.md", "earlier step\n")
	t.Setenv("GITHUB_STEP_SUMMARY", step)
	if code, _, stderr := runCLI(t, "compare", base, base); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	got, err := os.ReadFile(step)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "earlier step\n### sockbench compare: base.json vs base.json") {
		t.Errorf("step summary not appended:\n%s", got)
	}
}
