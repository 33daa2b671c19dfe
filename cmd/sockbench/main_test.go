package main

// End-to-end tests of the sockbench CLI: run() in-process for most cases, the
// built binary as a subprocess where a signal is involved. Every socket is on
// 127.0.0.1 with an ephemeral port, every wait has a deadline, and every run
// is about a second long.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/wire"
	"github.com/sockbench/sockbench/scenarios"
)

// short are the flags that keep a run at about 1.2 s: 5 connections, 200
// msg/s in total (40 per connection, one every 25 ms), 200 ms warm-up, 1 s
// measured, 300 ms drain.
var short = []string{"--conns", "5", "--rate", "200", "--duration", "1s", "--warmup", "200ms", "--timeout", "300ms", "--quiet"}

const (
	shortConns = 5
	shortSent  = 200 // 40 slots of 25 ms per connection in the 1 s window
)

// builtinGates is how many thresholds the built-in name declares.
func builtinGates(t *testing.T, name string) int {
	t.Helper()
	s, ok := scenarios.Builtin(name)
	if !ok {
		t.Fatalf("no built-in %q", name)
	}
	return len(s.Thresholds)
}

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func readResult(t *testing.T, path string) *result.Result {
	t.Helper()
	r, err := result.Read(path)
	if err != nil {
		t.Fatalf("result.Read(%s): %v", path, err)
	}
	return r
}

// checkAccounting checks the identities every result must satisfy, whatever
// happened during the run.
func checkAccounting(t *testing.T, r *result.Result) {
	t.Helper()
	c := r.Counters
	if got, want := c.Sent, c.Received+c.Lost+c.InFlight; got != want {
		t.Errorf("sent %d != received %d + lost %d + in_flight %d = %d", c.Sent, c.Received, c.Lost, c.InFlight, want)
	}
	if got, want := r.SchemaVersion, result.SchemaVersion; got != want {
		t.Errorf("schema_version %d, want %d", got, want)
	}
	for _, name := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		h := r.Histograms[name]
		if h == nil {
			t.Errorf("histogram %q missing", name)
			continue
		}
		d, err := h.HDR()
		if err != nil {
			t.Errorf("histogram %q does not decode: %v", name, err)
			continue
		}
		if got, want := d.TotalCount(), h.Count; got != want {
			t.Errorf("histogram %q: decoded count %d, summary count %d", name, got, want)
		}
	}
	if h := r.Histograms[result.Latency]; h != nil && h.Count != c.Received {
		t.Errorf("latency histogram count %d, received %d: one sample per reply", h.Count, c.Received)
	}
	if h := r.Histograms[result.ServiceTime]; h != nil && h.Count != c.Received {
		t.Errorf("service_time histogram count %d, received %d", h.Count, c.Received)
	}
	if h := r.Histograms[result.SendLag]; h != nil && h.Count != c.Sent {
		t.Errorf("send_lag histogram count %d, sent %d: one sample per measured send", h.Count, c.Sent)
	}
	// A connected UDP socket has no handshake to time: no connect samples.
	wantConnect := c.ConnsOpened
	if r.Plan.Transport == "udp" {
		wantConnect = 0
	}
	if h := r.Histograms[result.Connect]; h != nil && h.Count != wantConnect {
		t.Errorf("connect histogram count %d, want %d (conns_opened %d, transport %s)", h.Count, wantConnect, c.ConnsOpened, r.Plan.Transport)
	}
	if len(r.Intervals) == 0 {
		t.Errorf("interval series is empty")
	}
	// The interval series covers the whole run, warm-up included, so its sums
	// are the measured and warm-up counts together.
	var ivSent, ivRecv int64
	for _, iv := range r.Intervals {
		ivSent += iv.Sent
		ivRecv += iv.Received
	}
	if got, want := ivSent, c.Sent+c.WarmupSent; got != want {
		t.Errorf("intervals sent %d, want sent %d + warmup_sent %d = %d", got, c.Sent, c.WarmupSent, want)
	}
	if got, want := ivRecv, c.Received+c.WarmupReceived; got != want {
		t.Errorf("intervals received %d, want received %d + warmup_received %d = %d", got, c.Received, c.WarmupReceived, want)
	}
	if got, want := c.ConnsOpened, c.ConnsDropped+c.ConnsClosed; got != want {
		t.Errorf("conns_opened %d != conns_dropped %d + conns_closed %d", got, c.ConnsDropped, c.ConnsClosed)
	}
}

// checkSent checks that a short run sent exactly what its schedule planned:
// 40 slots of 25 ms per connection in the 1 s window. Every phase's pacing
// and the stop time are published before the window opens, and the drain
// waits for writers that still owe sends, so a loaded machine delays sends
// (send lag) but neither adds nor drops any.
func checkSent(t *testing.T, r *result.Result) {
	t.Helper()
	if got, want := r.Counters.Sent, int64(shortSent); got != want {
		lag := r.Histograms[result.SendLag]
		t.Errorf("sent %d, schedule planned %d (window %.3fs, drain %s, send lag max %s)",
			got, want, r.Window.Seconds(), time.Duration(r.Window.DrainEndNs-r.Window.EndNs), time.Duration(lag.Max))
	}
}

// timeMetrics are the threshold metrics that measure time. A built-in's
// gate on one of them (p99 < 100ms) can fail on a loaded machine, the run
// being as slow as it says; the others (errors, loss, delivery) cannot.
var timeMetrics = map[string]bool{"latency": true, "service_time": true, "connect": true, "send_lag": true, "fanout": true, "room_latency": true}

// checkGate checks a run's exit code against the thresholds of its results
// (one, or both sides of a pair): 0 when every one passed, 1 (exitGate)
// when one failed; each verdict is the threshold's own, measured again on
// the result's figures; and only a threshold on time may have failed. A
// latency gate failing on a loaded machine is the gate working: the test
// says so in its log and goes on. It returns how many thresholds failed.
func checkGate(t *testing.T, code int, stderr string, rs ...*result.Result) int {
	t.Helper()
	return checkGateFailing(t, code, stderr, nil, rs...)
}

// checkGateFailing is checkGate for runs where the thresholds mustFail
// (as written) fail, whatever they measure.
func checkGateFailing(t *testing.T, code int, stderr string, mustFail []string, rs ...*result.Result) int {
	t.Helper()
	failed := 0
	for _, r := range rs {
		for _, tr := range r.Checks {
			th, err := scenarios.ParseThreshold(tr.Expr)
			if err != nil {
				t.Errorf("threshold %q in the result does not parse: %v", tr.Expr, err)
				continue
			}
			if again := th.Check(r); again.Pass != tr.Pass || again.Measured != tr.Measured {
				t.Errorf("threshold %q: the result says pass %v measured %v, its figures say pass %v measured %v", tr.Expr, tr.Pass, tr.Measured, again.Pass, again.Measured)
			}
			must := slices.Contains(mustFail, tr.Expr)
			switch {
			case must && tr.Pass:
				t.Errorf("threshold %q passed (measured %v %s), want it to fail", tr.Expr, tr.Measured, tr.Unit)
			case tr.Pass:
			case must:
				failed++
			case timeMetrics[tr.Metric]:
				failed++
				t.Logf("threshold %q failed on this machine, measured %s: exit 1 is the gate working", tr.Expr, time.Duration(tr.Measured))
			default:
				failed++
				t.Errorf("threshold %q failed (measured %v %s, %s): it does not measure time, so load cannot fail it", tr.Expr, tr.Measured, tr.Unit, tr.Reason)
			}
		}
	}
	if want := map[bool]int{true: exitOK, false: exitGate}[failed == 0]; code != want {
		t.Errorf("exit %d, want %d (%d thresholds failed); stderr:\n%s", code, want, failed, stderr)
	}
	return failed
}

// TestRunEcho runs each echo built-in against the embedded reference server.
func TestRunEcho(t *testing.T) {
	for _, tc := range []struct {
		scenario, transport string
	}{
		{"echo", "ws"},
		{"echo-tcp", "tcp"},
		{"echo-udp", "udp"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			code, stdout, stderr := runCLI(t, append([]string{"run", tc.scenario, "--out", out}, short...)...)
			if code != exitOK && code != exitGate {
				t.Fatalf("exit %d, want 0 (or 1 for a latency gate the machine was too slow for); stderr:\n%s", code, stderr)
			}
			for _, want := range []string{"latency", "service_time", "messages   sent", "errors     none"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, "result written to "+out) {
				t.Errorf("stderr does not name the result file:\n%s", stderr)
			}
			r := readResult(t, out)
			checkAccounting(t, r)
			checkGate(t, code, stderr, r)
			c := r.Counters
			if got, want := r.Plan.Transport, tc.transport; got != want {
				t.Errorf("plan.transport %q, want %q", got, want)
			}
			if !r.Plan.Embedded || r.Interrupted {
				t.Errorf("embedded %v, interrupted %v; want true, false", r.Plan.Embedded, r.Interrupted)
			}
			checkSent(t, r)
			if c.Lost != 0 || c.InFlight != 0 || c.Received != c.Sent {
				t.Errorf("received %d, lost %d, in_flight %d of %d sent; want all received", c.Received, c.Lost, c.InFlight, c.Sent)
			}
			if len(c.Errors) != 0 {
				t.Errorf("errors %v, want none", c.Errors)
			}
			if c.Duplicates+c.Reordered+c.Late+c.Unexpected != 0 {
				t.Errorf("anomalies: duplicates %d, reordered %d, late %d, unexpected %d", c.Duplicates, c.Reordered, c.Late, c.Unexpected)
			}
			if c.ConnsOpened != shortConns || c.ConnsFailed != 0 || c.ConnsDropped != 0 || c.ConnsClosed != shortConns {
				t.Errorf("conns opened %d failed %d dropped %d closed %d; want %d 0 0 %d",
					c.ConnsOpened, c.ConnsFailed, c.ConnsDropped, c.ConnsClosed, shortConns, shortConns)
			}
			if c.WarmupSent == 0 {
				t.Errorf("warmup_sent 0: the 200 ms warm-up sent nothing")
			}
			if r.Histograms[result.Latency].Count == 0 || r.Histograms[result.Latency].P50 <= 0 {
				t.Errorf("latency histogram empty or zero: %+v", r.Histograms[result.Latency])
			}
		})
	}
}

// freeUDPPort returns a UDP port on 127.0.0.1 that nothing listens on (it
// was bound and closed again).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// stalledWS accepts TCP connections and never answers the WebSocket upgrade.
func stalledWS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String() + "/"
}

// silentUDP is a bound UDP socket that reads and never replies.
func silentUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return "udp://" + c.LocalAddr().String()
}

// fullBacklog is a TCP listener with a backlog of 0 that never accepts, its
// queue filled by one connection: further SYNs are dropped, so a connect
// hangs until the client's timeout.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue, then check that a connect now hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i == 8 {
			t.Skip("the kernel accepts connections past a full backlog here; cannot make a connect hang")
		}
	}
	return "tcp://" + addr
}

// writeFile writes data to name in a fresh temporary directory.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// timeoutScenario has a 1 s connect timeout and otherwise the short shape.
const timeoutScenario = `name: unreachable
connect_timeout: 1s
warmup: 200ms
timeout: 300ms
phases:
  - name: steady
    duration: 1s
    conns: 5
    rate: 200
`

// TestRunUnreachable: a target that cannot be reached is exit 3, with a
// message naming it, within the connect timeout, and no result file.
func TestRunUnreachable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		scenario string
		target   func(t *testing.T) string
		file     bool          // use timeoutScenario (connect_timeout: 1s)
		within   time.Duration // the exit must come this soon
		reason   string        // regexp the message must match besides the target
	}{
		{"tcp refused", "echo-tcp", func(*testing.T) string { return "tcp://127.0.0.1:1" }, false, 6 * time.Second, "refused"},
		{"ws refused", "echo", func(*testing.T) string { return "ws://127.0.0.1:1/" }, false, 6 * time.Second, "refused"},
		{"udp nothing listening", "echo-udp", func(t *testing.T) string { return fmt.Sprintf("udp://127.0.0.1:%d", freeUDPPort(t)) }, false, 6 * time.Second, "refused"},
		{"ws handshake never answered", "", stalledWS, true, 3 * time.Second, "timeout|deadline"},
		{"udp no echo", "", silentUDP, true, 3 * time.Second, "no UDP echo"},
		{"tcp connect hangs", "", fullBacklog, true, 3 * time.Second, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := tc.target(t)
			arg := tc.scenario
			if tc.file {
				arg = writeFile(t, "unreachable.yaml", timeoutScenario)
			}
			out := filepath.Join(t.TempDir(), "r.json")
			start := time.Now()
			code, stdout, stderr := runCLI(t, append([]string{"run", arg, "--target", target, "--out", out}, short...)...)
			took := time.Since(start)
			if code != exitCannot {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitCannot, stdout, stderr)
			}
			if took > tc.within {
				t.Errorf("took %s to give up, want under %s", took, tc.within)
			}
			if !strings.Contains(stderr, target) || !strings.Contains(stderr, "unreachable") {
				t.Errorf("stderr does not say %s is unreachable:\n%s", target, stderr)
			}
			if !regexp.MustCompile(tc.reason).MatchString(stderr) {
				t.Errorf("stderr does not give the reason (%s):\n%s", tc.reason, stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a result file was written for a run that did not happen (stat: %v)", err)
			}
		})
	}
}

// TestRunNoConnectionOpened: a target that answers the probe and then
// refuses every connection is exit 3, with the result (all attempts failed)
// still written.
func TestRunNoConnectionOpened(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := "tcp://" + ln.Addr().String()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		c, err := ln.Accept() // the probe
		ln.Close()            // every later connect is refused
		if err == nil {
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-accepted })
	out := filepath.Join(t.TempDir(), "r.json")
	code, _, stderr := runCLI(t, append([]string{"run", "echo-tcp", "--target", target, "--out", out}, short...)...)
	if code != exitCannot {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitCannot, stderr)
	}
	// A connect racing the listener's close can be reset instead of refused.
	if !strings.Contains(stderr, "no connection to "+target) || !strings.Contains(stderr, "refused") {
		t.Errorf("stderr does not say no connection to %s could be opened and why:\n%s", target, stderr)
	}
	r := readResult(t, out)
	checkAccounting(t, r)
	if c := r.Counters; c.ConnsOpened != 0 || c.ConnsFailed != shortConns || c.Errors["refused"]+c.Errors["reset"] != shortConns || c.Sent != 0 {
		t.Errorf("counters %+v, want 5 refused (or reset) attempts and nothing sent", c)
	}
}

// TestUsageErrors: bad flags, arguments and scenarios are exit 2 with the
// reason, before anything runs.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	bad := writeFile(t, "bad.yaml", `name: bad
transport: tcp
phases:
  - name: steady
    duration: 1s
    conns: 2
    rate: 10
    sise: 64
`)
	for _, tc := range []struct {
		name string
		args []string
		want string // regexp on stderr
	}{
		{"bad scheme", []string{"run", "echo", "--target", "http://x"}, `--target: unknown scheme "http"`},
		{"negative rate", []string{"run", "echo", "--rate", "-5"}, `--rate: must be > 0 \(got -5\)`},
		{"rate not a number", []string{"run", "echo", "--rate", "fast"}, `invalid argument "fast" for "--rate"`},
		{"zero conns", []string{"run", "echo", "--conns", "0"}, `--conns: must be >= 1`},
		{"unknown flag", []string{"run", "echo", "--bogus"}, `unknown flag: --bogus`},
		{"unknown scenario", []string{"run", "nosuch"}, `no built-in scenario "nosuch".*built-ins: broadcast, broadcast-skewed, chat, echo, echo-tcp, echo-udp`},
		{"rooms on echo", []string{"run", "echo", "--rooms", "5"}, `--rooms: only applies to broadcast scenarios`},
		{"zero publish rate", []string{"run", "broadcast", "--publish-rate", "0"}, `--publish-rate: must be > 0`},
		{"more rooms than subscribers", []string{"run", "broadcast", "--conns", "5", "--rooms", "10"}, `--rooms: 10 rooms need at least as many subscribers`},
		{"publishers in chat", []string{"run", "chat", "--publishers", "2"}, `--publishers: chat has no dedicated publishers`},
		{"find-max what", []string{"run", "broadcast", "--find-max", "rate"}, `--find-max "rate": .*want --find-max conns`},
		{"until without find-max", []string{"run", "broadcast", "--until", "p99>1s"}, `need --find-max conns`},
		{"until typo", []string{"run", "broadcast", "--find-max", "conns", "--until", "p99>1sec"}, `--until "p99>1sec": unknown unit`},
		{"step factor", []string{"run", "broadcast", "--find-max", "conns", "--step-factor", "1"}, `--step-factor 1: want a factor above 1`},
		{"unknown key in file", []string{"run", bad}, regexp.QuoteMeta(bad) + `:8:5: unknown key "sise" in phase; did you mean "size"\?`},
		{"missing file", []string{"run", filepath.Join(t.TempDir(), "none.yaml")}, `none.yaml: cannot read scenario`},
		{"too many args", []string{"run", "echo", "echo-tcp"}, `run takes one scenario`},
		{"no scenario", []string{"run"}, `run takes one scenario`},
		{"unknown engine", []string{"run", "echo", "--engine", "warp"}, `--engine: unknown engine "warp"`},
		{"zero loops", []string{"run", "echo", "--loops", "0"}, `--loops 0: want at least 1`},
		{"threshold unit typo", []string{"run", "echo", "--threshold", "p99<20mz"}, `--threshold "p99<20mz": unknown unit "mz"`},
		{"threshold metric typo", []string{"run", "echo", "--threshold", "lantency.p99<1ms"}, `unknown metric "lantency"; did you mean "latency"\?`},
		{"epoll and wss", []string{"run", "echo", "--engine", "epoll", "--target", "wss://127.0.0.1:1/"}, `--engine epoll: the event loops do not speak TLS`},
		{"inflight in open loop", []string{"run", "echo", "--inflight", "8"}, `--inflight: only applies to closed mode`},
		{"zero inflight", []string{"run", "ping", "--inflight", "0"}, `--inflight: must be >= 1`},
		{"serve zero loops", []string{"serve", "--loops", "0"}, `--loops`},
		{"serve max-pending too small", []string{"serve", "--max-pending", "1000"}, `--max-pending 1000: want at least 65536 bytes`},
		{"scheme against transport", []string{"run", "echo-tcp", "--target", "ws://127.0.0.1:1/"}, `--target: scheme ws:// does not match transport: tcp`},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"scenarios with args", []string{"scenarios", "x"}, `takes no arguments`},
		{"serve with args", []string{"serve", "x"}, `takes no arguments`},
		{"no args", nil, `Usage: sockbench COMMAND`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := tc.args
			if len(args) > 0 && args[0] == "run" {
				args = append(args, "--out", filepath.Join(dir, "r.json"))
			}
			start := time.Now()
			code, stdout, stderr := runCLI(t, args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if !regexp.MustCompile(tc.want).MatchString(stderr) {
				t.Errorf("stderr does not match %q:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty on a usage error:\n%s", stdout)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s: a usage error must be found before anything runs", d)
			}
			if _, err := os.Stat(filepath.Join(dir, "r.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a result file was written (stat: %v)", err)
			}
		})
	}
}

// exitCodesDoc matches the exit codes paragraph, however it is wrapped.
var exitCodesDoc = regexp.MustCompile(`Exit codes:\s+0 passed;\s+1 a threshold[^;]*;\s+2 usage or\s+configuration error[^;]*;\s+3 the run could not be carried out`)

// TestHelpAndInfo: the informational commands and every --help exit 0.
func TestHelpAndInfo(t *testing.T) {
	t.Parallel()
	t.Run("scenarios", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "scenarios")
		if code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		for _, name := range []string{"echo", "echo-tcp", "echo-udp", "ping"} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+\S`).MatchString(stdout) {
				t.Errorf("scenarios does not list %q with a description:\n%s", name, stdout)
			}
		}
		if !strings.Contains(stdout, "gates: p99 < 100ms, error_rate < 1%, loss <= 0%") {
			t.Errorf("scenarios does not show what each built-in gates on:\n%s", stdout)
		}
		if regexp.MustCompile(`\w\.go\b`).MatchString(stdout) {
			t.Errorf("scenarios names a source file:\n%s", stdout)
		}
	})
	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "version")
		if code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr)
		}
		if !regexp.MustCompile(`^sockbench \S+ go\S+ \w+/\w+\n$`).MatchString(stdout) {
			t.Errorf("version output %q", stdout)
		}
	})
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"run", "--help"}, {"run", "-h"}, {"serve", "--help"}, {"scenarios", "--help"}, {"version", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, args...)
			if code != exitOK {
				t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
			}
			if stderr != "" {
				t.Errorf("help asked for goes to stdout (sockbench run --help | less); stderr:\n%s", stderr)
			}
			help := stdout
			if !strings.Contains(help, "Usage: sockbench") {
				t.Errorf("help has no usage line:\n%s", help)
			}
			if !exitCodesDoc.MatchString(help) {
				t.Errorf("help does not document the exit codes 0-3:\n%s", help)
			}
			if len(args) > 1 || args[0] != "help" && args[0] != "--help" && args[0] != "-h" {
				if !strings.Contains(help, "Example") {
					t.Errorf("help has no example:\n%s", help)
				}
			}
		})
	}
	t.Run("run --help lists its flags", func(t *testing.T) {
		_, stdout, _ := runCLI(t, "run", "--help")
		for _, f := range []string{"--conns", "--rate", "--duration", "--warmup", "--target", "--timeout", "--out"} {
			if !strings.Contains(stdout, f) {
				t.Errorf("run --help does not list %s", f)
			}
		}
	})
}

// closeMode is how the drop server ends a connection.
type closeMode int

const (
	keepOpen closeMode = iota // echo until the client closes
	reset                     // SO_LINGER 0 then close: an RST
	finClose                  // shutdown(SHUT_WR), drain, close: an orderly FIN
	garbage                   // answer with an oversized len32 prefix
)

// dropServer is a TCP len32 echo server that, per client connection id
// (read from the measurement header), echoes echoN messages, then reads
// swallowN more without echoing them (so they are outstanding on the client),
// then ends the connection as mode says.
type dropServer struct {
	ln       net.Listener
	echoN    int
	swallowN int
	mode     func(connID uint32) closeMode
	delay    time.Duration // held before each echo

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startDropServer(t *testing.T, echoN, swallowN int, mode func(uint32) closeMode) string {
	t.Helper()
	return serveDrop(t, &dropServer{echoN: echoN, swallowN: swallowN, mode: mode})
}

// serveDrop starts s on a loopback port and returns its tcp:// URL.
func serveDrop(t *testing.T, s *dropServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return "tcp://" + ln.Addr().String()
}

func (s *dropServer) serve(c *net.TCPConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a stuck test must not hang forever
	br := bufio.NewReader(c)
	mode := keepOpen
	var frame []byte
	for n := 0; ; n++ {
		var lenb [4]byte
		if _, err := io.ReadFull(br, lenb[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(lenb[:])
		if size > 1<<20 {
			return
		}
		frame = append(frame[:0], lenb[:]...)
		frame = append(frame, make([]byte, size)...)
		if _, err := io.ReadFull(br, frame[4:]); err != nil {
			return
		}
		if n == 0 {
			var h wire.Header
			if err := h.Decode(frame[4:]); err != nil {
				return
			}
			mode = s.mode(h.ConnID)
		}
		switch {
		case mode == garbage:
			_, _ = c.Write([]byte{0xff, 0xff, 0xff, 0xf0, 'x', 'x', 'x', 'x'})
			_, _ = io.Copy(io.Discard, br)
			return
		case mode == keepOpen || n < s.echoN:
			time.Sleep(s.delay)
			if _, err := c.Write(frame); err != nil {
				return
			}
		case n < s.echoN+s.swallowN-1:
			// read and not echoed: outstanding on the client
		case mode == reset:
			_ = c.SetLinger(0)
			return // the deferred Close sends an RST
		case mode == finClose:
			_ = c.CloseWrite()
			_, _ = io.Copy(io.Discard, br) // until the client closes its end: no RST for unread data
			return
		}
	}
}

// TestRunPeerClosesMidRun: connections that the target resets or closes
// mid-run are counted by class and dropped; their outstanding messages are
// lost; the run completes with exit 0.
func TestRunPeerClosesMidRun(t *testing.T) {
	t.Parallel()
	const (
		conns   = 6
		echoN   = 20 // 500 ms at 40 msg/s per connection: past the 200 ms warm-up
		swallow = 3  // intended 500-575 ms in, all measured
	)
	target := startDropServer(t, echoN, swallow, func(id uint32) closeMode {
		switch id {
		case 0, 1:
			return reset
		case 2, 3:
			return finClose
		}
		return keepOpen
	})
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runCLI(t, "run", "echo-tcp", "--target", target, "--out", out,
		"--conns", "6", "--rate", "240", "--duration", "1s", "--warmup", "200ms", "--timeout", "300ms", "--quiet")
	// Errors are counted, not fatal: the run completes and its result is
	// written; the built-in's "error_rate < 1%" threshold then fails the gate.
	if code != exitGate {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitGate, stderr)
	}
	r := readResult(t, out)
	checkAccounting(t, r)
	c := r.Counters
	failed := checkGateFailing(t, code, stderr, []string{"error_rate < 1%", "loss <= 0%"}, r)
	if !strings.Contains(stderr, fmt.Sprintf("%d of 3 thresholds failed: ", failed)) || !strings.Contains(stderr, "error_rate < 1% (measured ") || !strings.Contains(stderr, "loss <= 0% (measured ") {
		t.Errorf("stderr does not name the failed thresholds and what they measured:\n%s", stderr)
	}
	if got, want := c.Errors["reset"], int64(2); got != want {
		t.Errorf("errors[reset] %d, want %d (errors %v)", got, want, c.Errors)
	}
	if got, want := c.Errors["closed_by_peer"], int64(2); got != want {
		t.Errorf("errors[closed_by_peer] %d, want %d (errors %v)", got, want, c.Errors)
	}
	if got, want := c.ErrorsTotal(), int64(4); got != want {
		t.Errorf("errors total %d, want %d (errors %v)", got, want, c.Errors)
	}
	if c.ConnsOpened != conns || c.ConnsDropped != 4 || c.ConnsClosed != 2 || c.ConnsFailed != 0 {
		t.Errorf("conns opened %d dropped %d closed %d failed %d; want %d 4 2 0",
			c.ConnsOpened, c.ConnsDropped, c.ConnsClosed, c.ConnsFailed, conns)
	}
	// Each dropped connection had at least the swallowed messages outstanding;
	// all of them were in the measured window.
	if c.Lost < 4*swallow {
		t.Errorf("lost %d, want at least %d (%d swallowed on each of 4 dropped connections)", c.Lost, 4*swallow, swallow)
	}
	if c.InFlight != 0 {
		t.Errorf("in_flight %d, want 0: the open connections were all answered", c.InFlight)
	}
	// The two healthy connections answered all their 40 measured messages.
	if c.Received < 2*40 {
		t.Errorf("received %d, want at least 80", c.Received)
	}
	if !strings.Contains(stdout, "reset 2") || !strings.Contains(stdout, "closed_by_peer 2") {
		t.Errorf("summary does not show the errors by class:\n%s", stdout)
	}
	if !strings.Contains(stdout, "dropped 4") {
		t.Errorf("summary does not show the dropped connections:\n%s", stdout)
	}
	var ivErrors int64
	for _, iv := range r.Intervals {
		ivErrors += iv.Errors
	}
	if ivErrors != 4 {
		t.Errorf("interval series counts %d errors, want 4", ivErrors)
	}
}

// TestRunProtocolErrorCountedOnce: a target that answers one connection with
// a bad frame drops that connection with one protocol error, counted once
// (as the drop's class), not once when parsed and again when dropped.
func TestRunProtocolErrorCountedOnce(t *testing.T) {
	t.Parallel()
	target := startDropServer(t, 0, 0, func(id uint32) closeMode {
		if id == 0 {
			return garbage
		}
		return keepOpen
	})
	out := filepath.Join(t.TempDir(), "r.json")
	code, _, stderr := runCLI(t, append([]string{"run", "echo-tcp", "--target", target, "--out", out}, short...)...)
	if code != exitOK && code != exitGate {
		t.Fatalf("exit %d, want 0 (or 1 for a latency gate the machine was too slow for); stderr:\n%s", code, stderr)
	}
	r := readResult(t, out)
	checkAccounting(t, r)
	checkGate(t, code, stderr, r)
	c := r.Counters
	if c.ConnsDropped != 1 {
		t.Errorf("conns_dropped %d, want 1", c.ConnsDropped)
	}
	if got, want := c.Errors["protocol"], int64(1); got != want || len(c.Errors) != 1 {
		t.Errorf("errors %v, want exactly {protocol: %d}: one bad frame that ended one connection is one error", c.Errors, want)
	}
}

// The tests below run the built binary, to send it real signals.

var (
	buildOnce sync.Once
	binPath   string
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sockbenchBin builds sockbench once per test binary and returns its path.
func sockbenchBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "sockbench-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "sockbench")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("cannot build sockbench: %v", buildErr)
	}
	return binPath
}

// lines collects a subprocess's output and hands each line to waiters.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 4096)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := l.buf.Len()
	l.buf.Write(p)
	// Hand over complete lines only.
	all := l.buf.Bytes()
	lineStart := bytes.LastIndexByte(all[:start], '\n') + 1
	for {
		i := bytes.IndexByte(all[lineStart:], '\n')
		if i < 0 {
			break
		}
		select {
		case l.ch <- string(all[lineStart : lineStart+i]):
		default: // nobody is waiting for this many lines
		}
		lineStart += i + 1
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor returns the first line matching re, failing the test if none comes
// within d.
func (l *lines) waitFor(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case s := <-l.ch:
			if m := re.FindStringSubmatch(s); m != nil {
				return m
			}
		case <-timer.C:
			t.Fatalf("no line matching %q within %s; output so far:\n%s", re, d, l.String())
		}
	}
}

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *lines
	done           chan struct{}
	err            error
}

// start runs the built binary with args in dir; Cleanup kills it if the test
// left it running.
func start(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(sockbenchBin(t), args...), stdout: newLines(), stderr: newLines(), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// interrupt sends SIGINT and waits up to d for the exit; it returns the exit
// code and how long the exit took.
func (p *proc) interrupt(t *testing.T, d time.Duration) (int, time.Duration) {
	t.Helper()
	sent := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("still running %s after SIGINT; stdout:\n%s\nstderr:\n%s", d, p.stdout, p.stderr)
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("wait: %v", p.err)
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(sent)
}

// progressLine is a progress line of the measured phase "steady".
var progressLine = regexp.MustCompile(`^\[\s*\d+\.\ds\] steady\s+conns \d+\s+send \d+`)

// TestRunInterruptCLI: SIGINT ends a long run early with exit 3 (not a
// pass) and a result marked interrupted whose counters still add up.
func TestRunInterruptCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	p := start(t, dir, "run", "echo", "--duration", "30s", "--conns", "10", "--rate", "100",
		"--warmup", "200ms", "--timeout", "300ms", "--out", out)
	// Wait for a progress line from the measured phase, so there is
	// something measured to account for.
	p.stderr.waitFor(t, progressLine, 15*time.Second)
	code, took := p.interrupt(t, 5*time.Second)
	if code != exitCannot {
		t.Fatalf("exit %d after SIGINT, want %d; stderr:\n%s", code, exitCannot, p.stderr)
	}
	if took > 3*time.Second {
		t.Errorf("took %s to exit after SIGINT", took)
	}
	stderr := p.stderr.String()
	if !strings.Contains(stderr, "interrupted") || !strings.Contains(stderr, "result written to "+out) {
		t.Errorf("stderr does not say the run was interrupted and where the result is:\n%s", stderr)
	}
	if !strings.Contains(p.stdout.String(), "INTERRUPTED") {
		t.Errorf("summary does not say INTERRUPTED:\n%s", p.stdout)
	}
	r := readResult(t, out)
	if !r.Interrupted {
		t.Errorf(`result has "interrupted": false`)
	}
	checkAccounting(t, r)
	if r.Counters.Sent == 0 {
		t.Errorf("nothing measured before the interrupt")
	}
	if secs := r.Window.Seconds(); secs <= 0 || secs > 10 {
		t.Errorf("measured window %.2fs; want the stretch up to the interrupt", secs)
	}
}

// TestServe: `sockbench serve` on ephemeral ports prints where it listens,
// serves a run on each transport, and prints its counters on SIGINT.
func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, dir, "serve", "--ws", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0")
	urls := map[string]string{}
	listening := regexp.MustCompile(`^listening ((ws|tcp|udp)://127\.0\.0\.1:\d+/?)$`)
	for range 3 {
		m := p.stdout.waitFor(t, listening, 10*time.Second)
		urls[m[2]] = m[1]
	}
	if len(urls) != 3 {
		t.Fatalf("listening lines for %v, want ws, tcp and udp; stdout:\n%s", urls, p.stdout)
	}
	for _, tc := range []struct{ scenario, transport string }{
		{"echo-tcp", "tcp"}, {"echo", "ws"}, {"echo-udp", "udp"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			code, _, stderr := runCLI(t, append([]string{"run", tc.scenario, "--target", urls[tc.transport], "--out", out}, short...)...)
			if code != exitOK && code != exitGate {
				t.Fatalf("exit %d, want 0 (or 1 for a latency gate the machine was too slow for); stderr:\n%s", code, stderr)
			}
			r := readResult(t, out)
			checkAccounting(t, r)
			checkGate(t, code, stderr, r)
			c := r.Counters
			if r.Plan.Embedded || r.Plan.Target != urls[tc.transport] {
				t.Errorf("plan target %q (embedded %v), want %q", r.Plan.Target, r.Plan.Embedded, urls[tc.transport])
			}
			checkSent(t, r)
			if c.Received != c.Sent || len(c.Errors) != 0 {
				t.Errorf("sent %d received %d errors %v; want all received, no errors", c.Sent, c.Received, c.Errors)
			}
		})
	}
	code, took := p.interrupt(t, 8*time.Second)
	if code != exitOK {
		t.Errorf("serve exit %d after SIGINT, want 0; stderr:\n%s", code, p.stderr)
	}
	if took > 6*time.Second {
		t.Errorf("serve took %s to stop", took)
	}
	stats := regexp.MustCompile(`accepted (\d+), ws handshake failures (\d+), messages echoed (\d+), datagrams echoed (\d+), bytes in (\d+) out (\d+)`).
		FindStringSubmatch(p.stdout.String())
	if stats == nil {
		t.Fatalf("serve printed no counters on exit; stdout:\n%s", p.stdout)
	}
	var accepted, wsEchoed, datagrams int
	fmt.Sscan(stats[1], &accepted)
	fmt.Sscan(stats[3], &wsEchoed)
	fmt.Sscan(stats[4], &datagrams)
	// tcp and ws: a probe connection each plus 5 connections each.
	if accepted < 2*(shortConns+1) {
		t.Errorf("serve accepted %d connections, want at least %d", accepted, 2*(shortConns+1))
	}
	if wsEchoed < shortSent || datagrams < shortSent {
		t.Errorf("serve echoed %d ws messages and %d datagrams, want at least %d each", wsEchoed, datagrams, shortSent)
	}
	if stats[5] != stats[6] {
		t.Errorf("serve bytes in %s != bytes out %s for an echo server", stats[5], stats[6])
	}
}

// TestRunResultUnwritable: when --out cannot be written, the measured result
// is not lost: it goes to the temporary directory, stderr says where, and the
// exit code is 3.
func TestRunResultUnwritable(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	blocker := filepath.Join(t.TempDir(), "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(blocker, "r.json") // a file stands where the directory should be
	code, _, stderr := runCLI(t, append([]string{"run", "echo-tcp", "--out", out}, short...)...)
	if code != exitCannot {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitCannot, stderr)
	}
	fallback := filepath.Join(tmp, "r.json")
	if !strings.Contains(stderr, out) || !strings.Contains(stderr, "written to "+fallback) {
		t.Errorf("stderr does not name the failed path and the fallback:\n%s", stderr)
	}
	r := readResult(t, fallback)
	checkAccounting(t, r)
	if r.Counters.Sent == 0 {
		t.Errorf("fallback result has nothing measured: %+v", r.Counters)
	}
}

// TestRunEngines: --engine and --loops choose the engine, the result says
// which, and both count the same; Linux results carry memory figures.
func TestRunEngines(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll engine needs Linux")
	}
	for _, tc := range []struct {
		args  []string
		eng   string
		loops int
	}{
		{[]string{"--engine", "epoll", "--loops", "1"}, "epoll", 1},
		{nil, "epoll", engine.CPUs()}, // the default on Linux: one loop per CPU
		{[]string{"--engine", "goroutine"}, "goroutine", 0},
	} {
		t.Run(strings.Join(append([]string{tc.eng}, tc.args...), " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			args := append(append([]string{"run", "echo-tcp", "--out", out}, short...), tc.args...)
			code, _, stderr := runCLI(t, args...)
			if code != exitOK && code != exitGate {
				t.Fatalf("exit %d, want 0 (or 1 for a latency gate the machine was too slow for); stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "open-files limit") {
				t.Errorf("stderr does not say what the open-files limit allows:\n%s", stderr)
			}
			r := readResult(t, out)
			checkAccounting(t, r)
			checkGate(t, code, stderr, r)
			checkSent(t, r)
			if r.Plan.Engine != tc.eng || r.Plan.Loops != tc.loops {
				t.Errorf("engine %q with %d loops, want %q with %d", r.Plan.Engine, r.Plan.Loops, tc.eng, tc.loops)
			}
			if s := r.Self; s.PeakConns != shortConns || s.RSSStartBytes <= 0 || s.RSSPeakBytes <= 0 {
				t.Errorf("memory: peak conns %d, rss start %d, at peak %d; want %d conns and both set",
					s.PeakConns, s.RSSStartBytes, s.RSSPeakBytes, shortConns)
			}
		})
	}
}

// TestRunGate: thresholds from the scenario and --threshold are checked
// against the result; a failure exits 1 with the result written and the
// failed threshold named, a pass exits 0.
func TestRunGate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		thresholds []string
		code       int
		failed     []string
	}{
		{"all pass", []string{"p99 < 10s", "throughput > 10", "error_rate <= 0"}, exitOK, nil},
		{"one fails", []string{"p99 < 10s", "p50 < 1ns"}, exitGate, []string{"p50 < 1ns"}},
		{"two fail", []string{"throughput > 1000000", "send_lag.min > 1s"}, exitGate, []string{"throughput > 1000000", "send_lag.min > 1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			args := append([]string{"run", "echo-tcp", "--out", out}, short...)
			for _, th := range tc.thresholds {
				args = append(args, "--threshold", th)
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			r := readResult(t, out) // written whatever the gate says
			// The built-in's thresholds come first, then the flags'.
			if got, want := len(r.Checks), builtinGates(t, "echo-tcp")+len(tc.thresholds); got != want {
				t.Fatalf("%d threshold results, want %d: %+v", got, want, r.Checks)
			}
			var failed []string
			for _, c := range r.Checks {
				if !c.Pass {
					failed = append(failed, c.Expr)
				}
				if c.Source == "" {
					t.Errorf("threshold %q has no source", c.Expr)
				}
			}
			if strings.Join(failed, ";") != strings.Join(tc.failed, ";") {
				t.Errorf("failed %q, want %q", failed, tc.failed)
			}
			for _, f := range tc.failed {
				if !strings.Contains(stdout, "FAIL  "+f) {
					t.Errorf("summary lacks FAIL for %q:\n%s", f, stdout)
				}
			}
			if len(tc.failed) > 0 && !strings.Contains(stderr, fmt.Sprintf("%d of %d thresholds failed", len(tc.failed), len(r.Checks))) {
				t.Errorf("stderr does not count the failures:\n%s", stderr)
			}
		})
	}
}
