package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSlowServer starts a TCP len32 echo server that holds each frame for
// delay before echoing it, so every latency sample is at least delay. It
// returns the tcp:// URL.
func startSlowServer(t *testing.T, delay time.Duration) string {
	t.Helper()
	return serveDrop(t, &dropServer{mode: func(uint32) closeMode { return keepOpen }, delay: delay})
}

// slowScenario is echo-tcp without its gates; the flags give its shape.
const slowScenario = `name: slow
transport: tcp
framing: len32
phases:
  - name: steady
    duration: 1s
    conns: 1
    rate: 10
`

// TestRunAbortOnFail: against a server that takes 3 ms per reply, a
// threshold that cannot pass stops the run early with --abort-on-fail (exit
// 1, a written partial result saying why); without the flag the run goes to
// the end of its 3 s window and fails the same threshold at the end.
func TestRunAbortOnFail(t *testing.T) {
	t.Parallel()
	const window = 3 * time.Second
	for _, tc := range []struct {
		name      string
		flags     []string
		aborted   bool
		final     bool
		threshold string
	}{
		{"final", []string{"--threshold", "max<1ms", "--abort-on-fail"}, true, true, "max<1ms"},
		{"partial data", []string{"--threshold", "p50<1ms", "--abort-on-fail", "--abort-delay", "300ms"}, true, false, "p50<1ms"},
		{"without the flag", []string{"--threshold", "max<1ms"}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "r.json")
			// A scenario of the test's own: the built-in echo-tcp's gates
			// (p99 < 100ms first) could stop a run on a loaded machine
			// before the threshold under test.
			args := []string{"run", writeFile(t, "slow.yaml", slowScenario), "--target", startSlowServer(t, 3*time.Millisecond), "--out", out,
				"--conns", "5", "--rate", "200", "--duration", window.String(), "--warmup", "200ms", "--timeout", "300ms", "--quiet"}
			code, stdout, stderr := runCLI(t, append(args, tc.flags...)...)
			if code != exitGate {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitGate, stderr)
			}
			r := readResult(t, out)
			checkAccounting(t, r)
			if r.Interrupted {
				t.Errorf(`result has "interrupted": true; an abort is not an interrupt`)
			}
			secs := r.Window.Seconds()
			if !tc.aborted {
				if r.Aborted != nil {
					t.Fatalf("aborted without --abort-on-fail: %+v", r.Aborted)
				}
				if secs < window.Seconds()-0.01 {
					t.Errorf("measured window %.2fs, want the whole %s", secs, window)
				}
				return
			}
			a := r.Aborted
			if a == nil {
				t.Fatalf("result has no aborted section; window %.2fs; stdout:\n%s", secs, stdout)
			}
			if got, want := a.Expr, tc.threshold; got != want {
				t.Errorf("aborted by %q, want %q", got, want)
			}
			if got, want := a.Final, tc.final; got != want {
				t.Errorf("final %v, want %v (%s)", got, want, a.Reason)
			}
			if a.Source != "--threshold" || a.Unit != "ns" || a.Measured < 1e6 {
				t.Errorf("aborted %+v: want source --threshold, measured >= 1ms in ns", a)
			}
			if a.AtNs <= 0 || a.AtNs > r.Window.EndNs || a.WindowNs > a.AtNs {
				t.Errorf("aborted at %d ns, %d ns into the window; window ends %d", a.AtNs, a.WindowNs, r.Window.EndNs)
			}
			if secs <= 0 || secs > window.Seconds()-0.5 {
				t.Errorf("measured window %.2fs; want it cut short of %s", secs, window)
			}
			if !strings.Contains(stdout, "ABORTED") || !strings.Contains(stderr, "aborted (--abort-on-fail)") {
				t.Errorf("output does not say the run was aborted; stdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
			if !strings.Contains(stderr, "result written to "+out) {
				t.Errorf("stderr does not say where the partial result is:\n%s", stderr)
			}
		})
	}
}
