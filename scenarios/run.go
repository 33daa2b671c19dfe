package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockbench/sockbench/internal/engine"
	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/rooms"
	"github.com/sockbench/sockbench/targets"
)

// RunError is a run that could not be carried out: the target is
// unreachable, the reference server could not start. The CLI exits 3.
type RunError struct{ Err error }

func (e *RunError) Error() string { return e.Err.Error() }
func (e *RunError) Unwrap() error { return e.Err }

// RunOptions are the knobs of a run that are not part of the scenario.
type RunOptions struct {
	Engine  string // engine name; "" = default
	Loops   int    // event loops of the epoll engine; 0 = GOMAXPROCS
	Version string // sockbench version, recorded in the result
	// Interval, if set, is called after each interval (about once a second)
	// with the interval just closed and the plan's phase at that time.
	Interval func(iv result.Interval, p *plan.Plan)
	Logf     func(format string, args ...any) // rare events; may be nil
	// OpenFiles is the open-files limit in force, recorded in the result.
	OpenFiles uint64
	// AbortOnFail checks the spec's thresholds on the cumulative data after
	// each interval (about once a second) while the measured window runs,
	// and stops the run as an interrupt would when one fails for good
	// (Threshold.FinalOnFailure), or fails at all once AbortDelay of the
	// measured window has passed. The result then has Aborted set.
	AbortOnFail bool
	// AbortDelay is the measured time, ns, before AbortOnFail judges
	// thresholds whose verdict can still change; 0 = DefaultAbortDelay.
	AbortDelay time.Duration
}

// Run executes p (resolved from spec) and returns what was measured. On
// interrupt (ctx cancelled) it returns the partial result with Interrupted
// set and a nil error; stopped by opts.AbortOnFail, the partial result with
// Aborted set; stopped because no connection was left, the partial result
// with Stopped set. A target that cannot be reached is a *RunError.
func Run(ctx context.Context, spec *Spec, p *plan.Plan, opts RunOptions) (*result.Result, error) {
	if p.Target.Embedded {
		srv, err := startReference(p, opts.Logf)
		if err != nil {
			return nil, &RunError{Err: fmt.Errorf("start the reference server: %w", err)}
		}
		defer srv.Close()
	}

	if err := engine.Probe(ctx, p); err != nil {
		if ctx.Err() != nil {
			return nil, &RunError{Err: fmt.Errorf("interrupted before the run began")}
		}
		return nil, &RunError{Err: err}
	}
	// Recorders: shards for the goroutine engine's connections, plus one per
	// event loop so that loops own theirs outright.
	set := metrics.NewSet(4*engine.CPUs() + opts.Loops)
	clk := engine.NewClock()
	startedAt := time.Now()
	var tracker *rooms.Tracker
	stopSweep := func() {}
	if p.Broadcast != nil {
		tracker = rooms.New(p, set.Win)
		stopSweep = tracker.Run(clk.Now)
		defer stopSweep()
	}
	eng, err := engine.New(opts.Engine, engine.Config{Plan: p, Set: set, Clock: clk, Logf: opts.Logf, Loops: opts.Loops, Rooms: tracker})
	switch {
	case err == nil:
	case engine.Check(opts.Engine) != nil || errors.Is(err, engine.ErrNoTLS):
		return nil, &Error{Flag: "--engine", Msg: err.Error()} // the user's choice: exit 2
	default:
		return nil, &RunError{Err: fmt.Errorf("start the engine: %w", err)} // the system's: exit 3
	}
	cpu0 := cpuTime()
	rss0 := rss()
	var peakConns, rssAtPeak int64

	var mu sync.Mutex
	phaseIdx := -1
	var winStart int64 // measured window start, ns; 0 until it begins
	driveCtx, stopDrive := context.WithCancel(ctx)
	defer stopDrive()
	var aborted *result.Abort // set by the collector before it stops the drive
	delay := opts.AbortDelay
	if delay <= 0 {
		delay = DefaultAbortDelay
	}
	var planned int64 // the measured window's planned length, ns
	for _, ph := range p.Phases {
		planned += int64(ph.Duration)
	}
	// checkAbort checks the thresholds on the data so far (AbortOnFail)
	// and stops the drive when one fails for good or after the delay.
	checkAbort := func(now int64) bool {
		mu.Lock()
		start := winStart
		mu.Unlock()
		if start > 0 && now >= start+planned || ctx.Err() != nil {
			return false // the window is over (the final check decides), or the user stopped the run
		}
		c, h, err := set.Snapshot()
		if err != nil {
			return false
		}
		window := int64(0)
		if start > 0 {
			window = now - start
		}
		a := earlyAbort(spec.Thresholds, snapshot(c, h, p, start, now), now, window, delay)
		if a == nil {
			return false
		}
		mu.Lock()
		aborted = a
		mu.Unlock()
		stopDrive()
		return true
	}
	var intervals []result.Interval
	last := int64(0)
	collect := func(now int64) {
		mu.Lock()
		tick := set.Interval()
		secs := float64(now-last) / 1e9
		if secs <= 0 {
			mu.Unlock()
			return
		}
		ph := p.Phases[min(max(phaseIdx, 0), len(p.Phases)-1)]
		name := ph.Name
		switch {
		case phaseIdx < 0:
			name = "warmup"
		case phaseIdx >= len(p.Phases):
			name = "drain"
		}
		open := set.Open()
		iv := result.Interval{
			TNs: now, Phase: name, Sent: tick.Sent, Received: tick.Received, Lost: tick.Lost,
			SendRate: float64(tick.Sent) / secs, RecvRate: float64(tick.Received) / secs,
			OpenConns: open, Errors: tick.Errors,
			P50Ns: tick.Latency.ValueAtPercentile(50), P99Ns: tick.Latency.ValueAtPercentile(99),
			MaxNs:        tick.Latency.Max(),
			SendLagP99Ns: tick.SendLag.ValueAtPercentile(99), SendLagMaxNs: tick.SendLag.Max(),
		}
		if p.Mode == plan.Open {
			iv.PlannedRate = ph.Rate() * min(float64(open)/float64(ph.Conns), 1)
		}
		iv.RSSBytes = rss()
		// The last interval with the most connections open: held, not ramping.
		if open >= peakConns && open > 0 {
			peakConns, rssAtPeak = open, iv.RSSBytes
		}
		last = now
		intervals = append(intervals, iv)
		mu.Unlock()
		if opts.Interval != nil {
			opts.Interval(iv, p) // unlocked: a slow progress writer must not hold up the timeline
		}
	}
	done := make(chan struct{})
	collectorDone := make(chan struct{})
	go func() {
		defer close(collectorDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				now := clk.Now()
				collect(now)
				if opts.AbortOnFail && len(spec.Thresholds) > 0 && checkAbort(now) {
					return
				}
			case <-done:
				return
			}
		}
	}()

	tl := engine.Drive(driveCtx, eng, p, clk, set, engine.Hooks{Phase: func(i int, ns int64) {
		mu.Lock()
		phaseIdx = i
		if i == 0 {
			winStart = ns
		}
		mu.Unlock()
	}})
	close(done)
	<-collectorDone
	mu.Lock()
	phaseIdx = len(p.Phases) // what is left is the drain
	mu.Unlock()
	collect(clk.Now())

	counters, hists, err := set.Snapshot()
	if err != nil {
		return nil, err
	}
	var bc *result.Broadcast
	if tracker != nil {
		stopSweep()
		if bc, err = tracker.Finish(); err != nil {
			return nil, err
		}
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode scenario: %w", err)
	}
	r := &result.Result{
		SchemaVersion: result.SchemaVersion,
		Scenario:      specJSON,
		Plan: result.PlanInfo{
			Name: p.Name, Target: p.Target.URL, Embedded: p.Target.Embedded,
			Transport: transportName(p.Target), Framing: string(p.Framing), Mode: string(p.Mode),
			Engine: eng.Name(), Loops: loopCount(eng), TimeoutNs: int64(p.Timeout), WarmupNs: int64(p.Warmup),
		},
		Env:       environment(opts),
		StartedAt: startedAt,
		// An abort that came too late to stop the drive (it had finished)
		// is not one; a Ctrl-C is an interrupt whatever the checks said.
		Interrupted: tl.Interrupted && (aborted == nil || ctx.Err() != nil),
		Aborted:     abortedIf(aborted, tl.Interrupted && ctx.Err() == nil),
		Window:      result.Window{RampEndNs: tl.RampEnd, StartNs: tl.Start, EndNs: tl.End, DrainEndNs: tl.DrainEnd},
		Counters:    counters,
		Histograms:  hists,
		Intervals:   intervals,
		Broadcast:   bc,
	}
	if tl.Gone && ctx.Err() == nil {
		r.Stopped = &result.Stop{AtNs: tl.End, Reason: goneReason(&counters, tl.End)}
	}
	r.Rejected = set.Rejected()
	if p.Target.Transport != plan.TCP {
		r.Plan.Framing = ""
	}
	for i, st := range tl.PhaseStarts {
		ph := p.Phases[i]
		end := st + int64(ph.Duration)
		if i+1 < len(tl.PhaseStarts) {
			end = tl.PhaseStarts[i+1]
		}
		end = min(end, tl.End)
		pr := result.PhaseRun{Name: ph.Name, StartNs: st, EndNs: end, Conns: ph.Conns, Size: ph.Size}
		if p.Mode == plan.Open {
			pr.PlannedRate = ph.Rate()
		} else {
			pr.InFlight = ph.InFlight
		}
		r.Phases = append(r.Phases, pr)
	}
	for _, th := range spec.Thresholds {
		r.Thresholds = append(r.Thresholds, th.Expr)
	}
	r.Self = selfCheck(r, p, cpuTime().sub(cpu0), time.Duration(clk.Now()))
	if rss0 > 0 && rssAtPeak > 0 {
		r.Self.RSSStartBytes, r.Self.RSSPeakBytes, r.Self.PeakConns = rss0, rssAtPeak, peakConns
		if peakConns > 0 {
			r.Self.RSSPerConnBytes = max(rssAtPeak-rss0, 0) / peakConns
		}
	}
	// The gates: every threshold checked against the finished result. An
	// interrupted run is checked too; the CLI still exits 3 for it.
	for _, th := range spec.Thresholds {
		r.Checks = append(r.Checks, th.Check(r))
	}
	return r, nil
}

// goneReason says why a run stopped at ns with no connection left.
func goneReason(c *result.Counters, ns int64) string {
	at := time.Duration(ns).Round(time.Millisecond)
	if c.ConnsOpened == 0 {
		return fmt.Sprintf("no connection could be opened: all %d attempts failed (%s); stopped at %s", c.ConnsFailed, c.ErrorList(), at)
	}
	return fmt.Sprintf("every connection was lost and none remained at %s: %d opened, %d dropped, %d failed to open (errors: %s)",
		at, c.ConnsOpened, c.ConnsDropped, c.ConnsFailed, c.ErrorList())
}

// abortedIf is a, if the abort did stop the run.
func abortedIf(a *result.Abort, stopped bool) *result.Abort {
	if !stopped {
		return nil
	}
	return a
}

// startReference starts the embedded reference server for p's transport on
// loopback with ephemeral ports and points p's target at it.
func startReference(p *plan.Plan, logf func(string, ...any)) (*targets.Server, error) {
	cfg := targets.Config{Logf: logf}
	switch p.Target.Transport {
	case plan.TCP:
		cfg.TCP = "127.0.0.1:0"
	case plan.UDP:
		cfg.UDP = "127.0.0.1:0"
	default:
		cfg.WS = "127.0.0.1:0"
	}
	srv, err := targets.Serve(cfg)
	if err != nil {
		return nil, err
	}
	p.Target.URL = srv.URL(string(p.Target.Transport))
	if b := p.Broadcast; b != nil && p.Target.Transport == plan.WS {
		// Over WebSocket the namespace is the URL path.
		p.Target.URL = strings.TrimSuffix(p.Target.URL, "/") + b.Namespace
	}
	switch p.Target.Transport {
	case plan.TCP:
		p.Target.Addr = srv.TCPAddr()
	case plan.UDP:
		p.Target.Addr = srv.UDPAddr()
	default:
		p.Target.Addr = srv.WSAddr()
	}
	return srv, nil
}

func transportName(t plan.Target) string {
	if t.Transport == plan.WS && t.TLS {
		return "wss"
	}
	return string(t.Transport)
}

func environment(opts RunOptions) result.Env {
	host, _ := os.Hostname()
	return result.Env{
		Sockbench: opts.Version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Host: host, CPUs: runtime.NumCPU(), GOMAXPROCS: engine.CPUs(), OpenFiles: opts.OpenFiles,
	}
}

type cpu struct{ user, sys time.Duration }

func (a cpu) sub(b cpu) cpu { return cpu{a.user - b.user, a.sys - b.sys} }

func cpuTime() cpu {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpu{}
	}
	return cpu{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

// rss is this process's resident set size in bytes (Linux; 0 elsewhere).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// Saturation limits: beyond these the load generator, not the target, is
// what the numbers describe.
const (
	maxSendLagP99 = 10 * time.Millisecond // sends this late at p99 mean the schedule was not kept
	minRateRatio  = 0.98                  // achieved below 98% of the planned rate
	maxCPUShare   = 0.90                  // of all cores
)

// selfCheck reports the harness's own load and whether it saturated.
func selfCheck(r *result.Result, p *plan.Plan, used cpu, wall time.Duration) result.Self {
	s := result.Self{CPUUserNs: int64(used.user), CPUSystemNs: int64(used.sys)}
	if wall > 0 {
		s.CPUPercent = 100 * float64(used.user+used.sys) / float64(wall) / float64(runtime.NumCPU())
	}
	if lag := r.Histograms[result.SendLag]; lag != nil && lag.Count > 0 && p.Mode == plan.Open && time.Duration(lag.P99) > maxSendLagP99 {
		s.Saturated = true
		s.Warnings = append(s.Warnings, fmt.Sprintf("sends ran late: send lag p99 %s (limit %s); the load generator could not keep the schedule, so latency includes its own delay", time.Duration(lag.P99), maxSendLagP99))
	}
	if secs := r.Window.Seconds(); p.Mode == plan.Open && secs > 0 && !r.Interrupted && r.Aborted == nil && r.Counters.ConnsFailed == 0 && r.Counters.ConnsDropped == 0 {
		achieved := float64(r.Counters.Sent) / secs
		if planned := r.PlannedRate(); achieved < minRateRatio*planned && r.Counters.HeldBack+r.Counters.Unsent == 0 {
			s.Saturated = true
			s.Warnings = append(s.Warnings, fmt.Sprintf("achieved send rate %.0f msg/s is below %.0f%% of the planned %.0f msg/s (no connection failed or dropped)", achieved, 100*minRateRatio, planned))
		}
	}
	if s.CPUPercent > 100*maxCPUShare && !r.Plan.Embedded {
		s.Saturated = true
		s.Warnings = append(s.Warnings, fmt.Sprintf("sockbench used %.0f%% of all CPU cores; the harness was CPU-bound", s.CPUPercent))
	}
	if r.Plan.Embedded {
		s.Warnings = append(s.Warnings, "the reference server ran in the same process and shares its CPU; CPU figures include it")
	}
	return s
}

// loopCount is the number of event loops of an engine that has them.
func loopCount(e engine.Engine) int {
	if l, ok := e.(interface{ LoopCount() int }); ok {
		return l.LoopCount()
	}
	return 0
}
