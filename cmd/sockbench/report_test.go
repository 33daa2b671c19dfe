package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/result"
)

// TestReportCLI: one short run with --html and --progress tty, then
// `report` renders its result in every format, to stdout and to files.
func TestReportCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res, page := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	code, _, stderr := runCLI(t, "run", "echo", "--conns", "5", "--rate", "200", "--duration", "1s", "--warmup", "200ms",
		"--timeout", "300ms", "--progress", "tty", "--out", res, "--html", page)
	if code != exitOK && code != exitGate {
		t.Fatalf("run exit %d; stderr:\n%s", code, stderr)
	}
	checkGate(t, code, stderr, readResult(t, res))
	// The status line is rewritten in place, and ended before the next message.
	if !strings.Contains(stderr, "\r") || !strings.Contains(stderr, "\x1b[K\nsockbench: result written to "+res+"\n") {
		t.Errorf("no terminal status line ended before the result line:\n%q", stderr)
	}
	if !strings.Contains(stderr, "sockbench: HTML report written to "+page+"\n") {
		t.Errorf("stderr does not say where the HTML report is:\n%s", stderr)
	}
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), `<svg class="chart"`) {
		t.Fatalf("run --html: %v; %.200s", err, b)
	}

	cases := []struct {
		name   string
		args   []string
		stdout []string // substrings of stdout
		files  []string // files written, relative to dir
	}{
		{"text", []string{}, []string{"sockbench dev: echo\n", "threshold  pass"}, nil},
		{"html to stdout", []string{"--format", "html"}, []string{"<!DOCTYPE html>", `<svg class="chart"`}, nil},
		{"html to file", []string{"-f", "html", "-o", filepath.Join(dir, "x.html")}, nil, []string{"x.html"}},
		{"csv", []string{"--format", "csv"}, []string{"t_ns,phase,sent,received,lost,"}, nil},
		{"json", []string{"--format", "json"}, []string{fmt.Sprintf(`"schema_version": %d`, result.SchemaVersion)}, nil},
		{"hgrm latency to stdout", []string{"--format", "hgrm"}, []string{" Value\tPercentile\tTotalCount\t1/(1-Percentile)\n"}, nil},
		{"hgrm one metric", []string{"--format", "hgrm", "--metric", "connect"}, []string{"Total count    =            5]"}, nil},
		{"hgrm files", []string{"--format", "hgrm", "-o", filepath.Join(dir, "h.hgrm")}, nil,
			[]string{"h.latency.hgrm", "h.service_time.hgrm", "h.connect.hgrm", "h.send_lag.hgrm"}},
		{"overlay", []string{res, "-f", "html", "--label", "<a>", "--label", "b"},
			[]string{"<h1>sockbench comparison: &lt;a&gt; vs b</h1>", "&lt;a&gt;: latency", "b: receive rate", "<td>latency p99</td>"}, nil},
		{"overlay to file, named by file", []string{res, "-f", "html", "-o", filepath.Join(dir, "cmp.html")}, nil, []string{"cmp.html"}},
		{"hgrm one file", []string{"--format", "hgrm", "--metric", "send_lag", "-o", filepath.Join(dir, "one")}, nil, []string{"one.send_lag.hgrm"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"report", res}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%.2000s", s, stdout)
				}
			}
			for _, f := range tc.files {
				if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
					t.Errorf("%s not written: %v", f, err)
				}
			}
		})
	}
	// JSON round-trips to the same result.
	_, stdout, _ := runCLI(t, "report", res, "--format", "json")
	back, err := result.Decode("stdout", []byte(stdout))
	if err != nil {
		t.Fatalf("report --format json does not read back: %v", err)
	}
	if got, want := back.Counters.Sent, readResult(t, res).Counters.Sent; got != want || got == 0 {
		t.Errorf("report --format json: sent %d, want %d", got, want)
	}
}

// TestReportErrors: bad input exits 2 with a message naming the problem;
// an output that cannot be written exits 3.
func TestReportErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	r := &result.Result{SchemaVersion: 1, Histograms: map[string]*result.Histogram{}}
	for _, n := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		h, err := result.FromHDR(result.NewHistogram())
		if err != nil {
			t.Fatal(err)
		}
		r.Histograms[n] = h
	}
	if err := result.WriteFile(good, r); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(dir, "closed.json")
	r.Plan.Mode = "closed"
	if err := result.WriteFile(closed, r); err != nil {
		t.Fatal(err)
	}
	r.Plan.Mode = "open"
	if err := result.WriteFile(good, r); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(r)
	truncated := writeFile(t, "truncated.json", string(data[:len(data)/2]))
	// A broadcast section with a room histogram that does not decode: a
	// bad input (exit 2), and an existing -o file is left as it was.
	bad := *r
	bad.Broadcast = &result.Broadcast{PerRoom: []result.RoomResult{{Name: "room-0", Latency: &result.Histogram{Encoded: "garbage!!"}}}}
	badHist := filepath.Join(dir, "badhist.json")
	if data, err := json.Marshal(&bad); err != nil || os.WriteFile(badHist, data, 0o644) != nil {
		t.Fatal(err)
	}
	keep := writeFile(t, "keep.html", "old")
	// Values no chart can place (an overflowed rate) render, and do not hang.
	huge := *r
	huge.Intervals = []result.Interval{{TNs: 1e9, RecvRate: 1.79e308, SendRate: 1.79e308}, {TNs: 2e9, RecvRate: 10}}
	hugeFile := filepath.Join(dir, "huge.json")
	if err := result.WriteFile(hugeFile, &huge); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "report", hugeFile, "-f", "html", "-o", filepath.Join(dir, "huge.html")); code != exitOK {
		t.Errorf("huge values: exit %d: %s", code, stderr)
	}
	newer := writeFile(t, "newer.json", `{"schema_version": 99}`)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no file", []string{"report"}, exitUsage, "report takes one result file"},
		{"three files", []string{"report", good, good, good}, exitUsage, "report takes one result file, or two to overlay in HTML"},
		{"two files as text", []string{"report", good, good}, exitUsage, "two results are overlaid in --format html only"},
		{"one label for two", []string{"report", good, good, "-f", "html", "--label", "a"}, exitUsage, "--label given 1 times for 2 results"},
		{"a label for one", []string{"report", good, "-f", "html", "--label", "a"}, exitUsage, "--label names the two results of an overlay"},
		{"overlay refused", []string{"report", good, closed, "-f", "html"}, exitUsage, "cannot compare: base ran open loop and new closed loop"},
		{"missing", []string{"report", filepath.Join(dir, "nope.json")}, exitUsage, "no such file"},
		{"truncated", []string{"report", truncated}, exitUsage, "truncated or corrupted JSON"},
		{"newer schema", []string{"report", newer}, exitUsage, "upgrade sockbench"},
		{"unknown format", []string{"report", good, "--format", "pdf"}, exitUsage, `--format "pdf": want one of text, html, hgrm, csv, json`},
		{"metric without hgrm", []string{"report", good, "--metric", "latency"}, exitUsage, "--metric applies to --format hgrm only"},
		{"unknown metric", []string{"report", good, "-f", "hgrm", "--metric", "fanout"}, exitUsage, "this result has latency, service_time, connect, send_lag"},
		{"unwritable", []string{"report", good, "-f", "html", "-o", filepath.Join(dir, "no", "such", "dir.html")}, exitCannot, "write html report"},
		{"bad room histogram", []string{"report", badHist, "-f", "html", "-o", keep}, exitUsage, "badhist.json: broadcast room-0 latency histogram"},
		{"bad progress", []string{"run", "echo", "--progress", "fancy"}, exitUsage, `unknown progress mode "fancy"`},
		{"quiet against tty", []string{"run", "echo", "--quiet", "--progress", "tty"}, exitUsage, "--quiet is --progress off"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, want %d, with %q; stderr:\n%s", code, tc.code, tc.msg, stderr)
			}
		})
	}
	if b, _ := os.ReadFile(keep); string(b) != "old" {
		t.Errorf("a report that failed changed the -o file to %q", b)
	}
}

// TestRunHTMLInterrupted: an interrupted run still writes its HTML report,
// which says the result is partial.
func TestRunHTMLInterrupted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	page := filepath.Join(dir, "r.html")
	p := start(t, dir, "run", "echo", "--duration", "30s", "--conns", "10", "--rate", "100",
		"--warmup", "200ms", "--timeout", "300ms", "--out", filepath.Join(dir, "r.json"), "--html", page)
	p.stderr.waitFor(t, progressLine, 15*time.Second)
	if code, _ := p.interrupt(t, 5*time.Second); code != exitCannot {
		t.Fatalf("exit %d after SIGINT, want %d; stderr:\n%s", code, exitCannot, p.stderr)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatalf("no HTML report after an interrupt: %v; stderr:\n%s", err, p.stderr)
	}
	if !strings.Contains(string(b), "Interrupted: a partial result") {
		t.Errorf("HTML report of an interrupted run does not say so")
	}
}
