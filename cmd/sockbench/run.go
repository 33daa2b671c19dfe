package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/reporters"
	"github.com/sockbench/sockbench/scenarios"
)

const runUsage = `
Usage: sockbench run SCENARIO|FILE.yaml [flags]

Runs a built-in scenario (see 'sockbench scenarios') or a scenario file.
With no target, sockbench starts its reference server in-process on loopback.
Prints one progress line per second to stderr, a summary to stdout, and
writes the result JSON (default ./sockbench-results/NAME-TIME.json).
Thresholds (the scenario's and --threshold's) are checked against the run;
if any fails, run exits 1.

Examples:
  sockbench run echo
  sockbench run echo --conns 2000 --rate 20000 --duration 10s
  sockbench run echo --threshold 'p99<5ms' --threshold 'error_rate<0.1%'   # exit 1 if either fails
  sockbench run echo --threshold 'max<50ms' --abort-on-fail                    # stop as soon as max<50ms cannot pass; exit 1
  sockbench run echo --target ws://127.0.0.1:8080/echo
  sockbench run echo --target wss://example.test/ws --insecure
  sockbench run echo-tcp --target tcp://127.0.0.1:9000
  sockbench run echo-udp --timeout 500ms --out udp.json
  sockbench run my-scenario.yaml --duration 1m
  sockbench run echo --html report.html --progress plain`

func runCmd() command {
	return command{
		summary: "run a scenario against a target (or the embedded reference server)",
		usage:   runUsage,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			var o scenarios.Overrides
			conns := fs.Int("conns", 0, "connections in every phase")
			connectRate := fs.Float64("connect-rate", 0, "new connections per second while ramping")
			rate := fs.Float64("rate", 0, "total send rate in msg/s across all connections (open loop)")
			perConn := fs.Float64("per-conn-rate", 0, "send rate in msg/s per connection (open loop)")
			duration := fs.Duration("duration", 0, "measured duration of every phase, e.g. 20s")
			warmup := fs.Duration("warmup", 0, "warm-up after the ramp, excluded from results, e.g. 3s")
			size := fs.Int("size", 0, "message payload bytes, measurement header included")
			inflight := fs.Int("inflight", 0, "closed loop: messages outstanding per connection")
			target := fs.String("target", "", "target URL: ws://, wss://, tcp://host:port, udp://host:port (default: embedded reference server)")
			timeout := fs.Duration("timeout", 0, "loss timeout: a UDP reply later than this is lost; also the drain window at the end (default 1s)")
			insecure := fs.Bool("insecure", false, "wss: do not verify the server's certificate")
			out := fs.String("out", "", "result JSON file (default ./sockbench-results/NAME-TIME.json)")
			eng := fs.String("engine", engine.Default(), "engine: epoll (event loops, Linux) or goroutine (portable; used for wss:// unless set)")
			loops := fs.Int("loops", 0, "event loops of the epoll engine (default GOMAXPROCS)")
			quiet := fs.Bool("quiet", false, "no progress lines (same as --progress off)")
			progress := fs.String("progress", "auto", "progress on stderr: auto (tty on a terminal, else plain), tty (one status line updated in place), plain (one line a second), off")
			thresholds := fs.StringArray("threshold", nil, "a pass/fail condition, e.g. 'p99<20ms' or 'error_rate<0.1%' (repeatable; added to the scenario's)")
			html := fs.String("html", "", "also write the HTML report of the run to this file (an interrupted run's too)")
			cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of sockbench itself to this file (for 'go tool pprof')")
			rooms := fs.Int("rooms", 0, "broadcast: number of rooms")
			publishers := fs.Int("publishers", 0, "broadcast: publisher connections")
			publishRate := fs.Float64("publish-rate", 0, "broadcast: publishes per second per room")
			findMax := fs.String("find-max", "", "capacity search: step this up until a condition breaks (only: conns)")
			until := fs.StringArray("until", nil, "capacity search: a step breaks when this holds, e.g. 'p99>250ms' or 'delivery<99.9%' (repeatable; default: p99>250ms, delivery<99.9% or loss>0.1%, error_rate>1%)")
			stepFactor := fs.Float64("step-factor", scenarios.DefaultStepFactor, "capacity search: conns grow by this factor each step")
			maxSteps := fs.Int("max-steps", scenarios.DefaultMaxSteps, "capacity search: at most this many steps")
			count := fs.Int("count", 1, "run the measured window N times, fresh connections each; the result keeps every repetition for compare")
			against := fs.String("against", "", "'reference': run the scenario against the embedded reference server, then the --target, and compare them side by side")
			abortOnFail := fs.Bool("abort-on-fail", false, "stop the run as soon as a threshold fails for good (max over its limit, min under it), or fails at all after --abort-delay of the measured window; exit 1")
			abortDelay := fs.Duration("abort-delay", scenarios.DefaultAbortDelay, "--abort-on-fail: measured time before a percentile, mean, ratio or rate threshold is judged on the data so far")
			ci := ciFlags(fs, true)
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 1 {
					return &usageError{"run takes one scenario name or file (see sockbench scenarios)"}
				}
				set := func(name string) bool { return fs.Changed(name) }
				if set("conns") {
					o.Conns = conns
				}
				if set("connect-rate") {
					o.ConnectRate = connectRate
				}
				if set("rate") {
					o.Rate = rate
				}
				if set("per-conn-rate") {
					o.PerConnRate = perConn
				}
				if set("duration") {
					o.Duration = duration
				}
				if set("warmup") {
					o.Warmup = warmup
				}
				if set("size") {
					o.Size = size
				}
				if set("inflight") {
					o.InFlight = inflight
				}
				if set("target") {
					o.Target = target
				}
				if set("timeout") {
					o.Timeout = timeout
				}
				if set("insecure") {
					o.Insecure = insecure
				}
				if set("rooms") {
					o.Rooms = rooms
				}
				if set("publishers") {
					o.Publishers = publishers
				}
				if set("publish-rate") {
					o.PublishRate = publishRate
				}
				f := runFlags{out: *out, loops: *loops, cpuProfile: *cpuProfile, thresholds: *thresholds,
					count: *count, against: *against, ci: ci, html: *html, abortOnFail: *abortOnFail, abortDelay: *abortDelay}
				if set("abort-delay") && (!*abortOnFail || *abortDelay <= 0) {
					return &usageError{fmt.Sprintf("--abort-delay %s: want a positive duration, with --abort-on-fail", *abortDelay)}
				}
				if *count < 1 {
					return &usageError{fmt.Sprintf("--count %d: want at least 1", *count)}
				}
				mode, err := reporters.ParseProgressMode(*progress)
				if err != nil {
					return &usageError{"--progress: " + err.Error()}
				}
				if *quiet {
					if set("progress") && mode != reporters.ProgressOff {
						return &usageError{"--quiet is --progress off; it contradicts --progress " + *progress}
					}
					mode = reporters.ProgressOff
				}
				f.progress = progressMode(mode, stderr)
				if set("find-max") || set("until") || set("step-factor") || set("max-steps") {
					s, err := searchFlags(*findMax, *until, *stepFactor, *maxSteps)
					if err != nil {
						return err
					}
					if *count > 1 || *against != "" || *abortOnFail {
						return &usageError{"--find-max runs one window per step; it does not combine with --count, --against or --abort-on-fail"}
					}
					s.html = *html // one report of every step
					f.search = s
				}
				if set("engine") {
					f.engine = *eng // else the default for the target
				}
				if set("loops") && *loops < 1 {
					return &usageError{fmt.Sprintf("--loops %d: want at least 1", *loops)}
				}
				return runScenario(args[0], o, f, stdout, stderr)
			}
		},
	}
}

type runFlags struct {
	out    string
	engine string // "" = the default for the target
	loops  int
	// progress is the resolved --progress mode (never auto).
	progress reporters.ProgressMode
	html     string // --html: the HTML report's file; "" for none
	// cpuProfile, if set, is where the harness's own CPU profile goes.
	cpuProfile string
	thresholds []string // --threshold, each
	count      int      // --count: measured windows to run, each with fresh connections
	against    string   // --against: "reference" or ""
	ci         *ciOutputs
	search     *capacitySearch // --find-max
	// abortOnFail stops the run when a threshold fails during it; abortDelay
	// is the measured time before non-final thresholds are judged.
	abortOnFail bool
	abortDelay  time.Duration
}

func loadSpec(arg string) (*scenarios.Spec, error) {
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") || strings.ContainsRune(arg, os.PathSeparator) {
		return scenarios.Load(arg)
	}
	if s, ok := scenarios.Builtin(arg); ok {
		return s, nil
	}
	var names []string
	for _, s := range scenarios.Builtins() {
		names = append(names, s.Name)
	}
	return nil, &usageError{fmt.Sprintf("no built-in scenario %q and not a .yaml file (built-ins: %s)", arg, strings.Join(names, ", "))}
}

func runScenario(arg string, o scenarios.Overrides, f runFlags, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the process at once
	}()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return &usageError{"--cpuprofile: " + err.Error()}
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return &usageError{"--cpuprofile: " + err.Error()}
		}
		defer pprof.StopCPUProfile()
	}
	if f.against != "" || arg == tcpVsUDP {
		return runPair(ctx, arg, o, f, stdout, stderr) // pair.go
	}
	spec, err := buildSpec(arg, o, f.thresholds)
	if err != nil {
		return err
	}
	r, err := execute(ctx, spec, f, f.out, stdout, stderr)
	if err != nil || r == nil { // nil: a capacity search, reported step by step
		return err
	}
	if err := f.ci.writeRun(r); err != nil {
		return err
	}
	return verdict(r)
}

// buildSpec loads a scenario and applies the flags and --threshold's.
func buildSpec(arg string, o scenarios.Overrides, thresholds []string) (*scenarios.Spec, error) {
	spec, err := loadSpec(arg)
	if err != nil {
		return nil, err
	}
	spec.Apply(o)
	for _, expr := range thresholds {
		th, err := scenarios.ParseThreshold(expr)
		if err != nil {
			return nil, &usageError{"--threshold " + err.Error()}
		}
		th.File = "--threshold"
		spec.Thresholds = append(spec.Thresholds, th)
	}
	return spec, nil
}

// execute plans and runs spec (--count times), prints its summary and
// writes its result to out (a default name when empty). A capacity search
// (--find-max) reports and writes its steps itself and returns no result.
func execute(ctx context.Context, spec *scenarios.Spec, f runFlags, out string, stdout, stderr io.Writer) (*result.Result, error) {
	x, err := prepare(spec, f, out, stderr)
	if err != nil {
		return nil, err
	}
	if f.search != nil {
		// Each step's progress shares the terminal with the step lines.
		return nil, runCapacity(ctx, spec, x.p, f.search, x.lim, x.opts, x.path, afterStatus{x.progress, stdout}, afterStatus{x.progress, stderr}) // capacity.go
	}
	// repeat.go; the status line is ended before each repetition's message and after the last
	r, err := runRepeated(ctx, spec, x.p, x.lim, x.opts, f.count, afterStatus{x.progress, stderr})
	x.progress.Done()
	if err != nil {
		return nil, err
	}
	return x.finish(r, stdout, stderr)
}

// prepared is a scenario planned and ready to run: what execute needs
// before the run and after it.
type prepared struct {
	p        *plan.Plan
	lim      scenarios.Limits
	opts     scenarios.RunOptions
	path     string // the result file
	html     string // --html, or ""
	progress *reporters.ProgressPrinter
}

// prepare plans spec, says what will run and sets up its progress.
func prepare(spec *scenarios.Spec, f runFlags, out string, stderr io.Writer) (*prepared, error) {
	limit := raiseOpenFiles()
	lim := scenarios.Limits{MaxConns: maxConns(limit, spec)}
	p, err := spec.Plan(lim)
	if err != nil {
		return nil, err
	}
	if err := engine.Check(f.engine); err != nil {
		return nil, &usageError{"--engine: " + err.Error()}
	}
	if f.engine == "epoll" && p.Target.TLS {
		return nil, &usageError{"--engine epoll: the event loops do not speak TLS; use --engine goroutine for wss:// targets"}
	}
	path := out
	if path == "" {
		path = filepath.Join("sockbench-results", fmt.Sprintf("%s-%s.json", p.Name, time.Now().Format("20060102-150405")))
	}

	fmt.Fprintf(stderr, "sockbench: %s\n", p.Describe())
	if n := maxConns(limit, spec); n > 0 {
		fmt.Fprintf(stderr, "sockbench: open-files limit %d allows %d connections%s\n", limit, n, sharedNote(spec))
	}
	opts := scenarios.RunOptions{
		Engine: f.engine, Loops: f.loops, Version: version, OpenFiles: limit, // no Logf: per-connection events are counted, not logged
		AbortOnFail: f.abortOnFail, AbortDelay: f.abortDelay,
	}
	if f.abortOnFail {
		for _, th := range spec.Thresholds {
			switch th.Metric {
			case "delivery", "fanout", "room_latency", "room_delivery":
				fmt.Fprintf(stderr, "sockbench: --abort-on-fail cannot judge %q during the run (broadcast accounting is final only at the end); it is checked at the end\n", th.Expr)
			}
		}
	}
	progress := reporters.NewProgress(stderr, f.progress, plannedLength(p))
	if f.progress != reporters.ProgressOff {
		opts.Interval = func(iv result.Interval, p *plan.Plan) {
			progress.Interval(iv)
		}
	}
	return &prepared{p: p, lim: lim, opts: opts, path: path, html: f.html, progress: progress}, nil
}

// finish prints r's summary and writes its result file (and --html).
func (x *prepared) finish(r *result.Result, stdout, stderr io.Writer) (*result.Result, error) {
	path := x.path
	if err := reporters.Text(stdout, r); err != nil {
		return nil, err
	}
	if err := saveResult(path, r); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "sockbench: result written to %s\n", path)
	if x.html != "" {
		if err := writeReport(x.html, "html", r); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "sockbench: HTML report written to %s\n", x.html)
	}
	return r, nil
}

// saveResult writes r to path. If it cannot, it keeps what was measured:
// it writes r where a file can be written (the temporary directory) and
// returns an error saying where, a run that was not carried out (exit 3).
func saveResult(path string, r *result.Result) error {
	err := result.WriteFile(path, r)
	if err == nil {
		return nil
	}
	fallback := filepath.Join(os.TempDir(), filepath.Base(path))
	if ferr := result.WriteFile(fallback, r); ferr != nil {
		return &scenarios.RunError{Err: fmt.Errorf("%w; the fallback %s failed too: %v", err, fallback, ferr)}
	}
	return &scenarios.RunError{Err: fmt.Errorf("%w; the result was written to %s instead", err, fallback)}
}

// verdict is a finished run's outcome: exit 3 when it was not carried out
// in full, 1 when a threshold failed.
func verdict(r *result.Result) error {
	if r.Interrupted {
		// Not a pass: the run was not carried out in full (exit 3), but what
		// was measured is written.
		return &cannotError{fmt.Errorf("interrupted; the result holds what was measured up to then")}
	}
	if r.Counters.ConnsOpened == 0 {
		return &cannotError{fmt.Errorf("no connection to %s could be opened (%d attempts failed: %s)", r.Plan.Target, r.Counters.ConnsFailed, r.Counters.ErrorList())}
	}
	if st := r.Stopped; st != nil {
		return &cannotError{fmt.Errorf("the run stopped early: %s; the result holds what was measured up to then", st.Reason)}
	}
	if a := r.Aborted; a != nil {
		return &gateError{fmt.Sprintf("aborted (--abort-on-fail) %s after the start: %s", time.Duration(a.AtNs).Round(time.Millisecond), a.Reason)}
	}
	var failed []string
	for _, t := range r.Checks {
		if !t.Pass {
			failed = append(failed, t.Expr+" ("+reporters.Measured(t)+")")
		}
	}
	if len(failed) > 0 {
		return &gateError{fmt.Sprintf("%d of %d thresholds failed: %s", len(failed), len(r.Checks), strings.Join(failed, "; "))}
	}
	return nil
}

// reservedFiles are descriptors kept for the process itself (binary, logs,
// result file, listeners, epoll).
const reservedFiles = 64

// raiseOpenFiles raises the soft open-files limit to the hard limit and
// returns the limit now in force.
func raiseOpenFiles() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// sharedNote explains a halved connection limit.
func sharedNote(spec *scenarios.Spec) string {
	if spec.EmbeddedStream() {
		return " (the embedded server holds the other ends in this process; run 'sockbench serve' separately for twice as many)"
	}
	return ""
}

// maxConns is how many connections the limit allows: each needs one
// descriptor, two when the embedded server holds the other end in this
// process (one shared socket for UDP).
func maxConns(limit uint64, spec *scenarios.Spec) int {
	if limit == 0 || limit > 1<<30 {
		return 0
	}
	n := int(limit) - reservedFiles
	if spec.EmbeddedStream() {
		n /= 2
	}
	return max(n, 1)
}
