// Package engine opens connections, sends on schedule and parses replies,
// recording every message into a metrics.Set. An Engine is the
// transport-and-concurrency half (goroutine per connection today, epoll event
// loops later); Drive is the timeline every engine shares: ramp, warm-up,
// measured phases, drain.
package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/rooms"
)

// Clock is the run's one monotonic clock: nanoseconds since the run started.
// Header timestamps and all latencies use it; never the wall clock.
type Clock struct{ start time.Time }

// NewClock starts a clock at zero now.
func NewClock() Clock { return Clock{start: time.Now()} }

// Now is nanoseconds since the clock started (monotonic).
func (c Clock) Now() int64 { return int64(time.Since(c.start)) }

// At is the wall time of a clock reading, for timers.
func (c Clock) At(ns int64) time.Time { return c.start.Add(time.Duration(ns)) }

// Start is the wall time the clock started.
func (c Clock) Start() time.Time { return c.start }

// Config is what an engine needs to run a plan.
type Config struct {
	Plan  *plan.Plan
	Set   *metrics.Set
	Clock Clock
	Logf  func(format string, args ...any) // rare events only; may be nil
	// Loops is the number of event loops of the epoll engine (0: GOMAXPROCS).
	Loops int
	// Rooms is the broadcast accounting of a plan with Broadcast set.
	Rooms *rooms.Tracker
}

// Engine is the transport half of a run. Drive calls Pace for
// the first phase and Scale for its connections; once the ramp is done it
// publishes every later phase with Pace and the end with Stop (both may name
// times in the future), scales at phase boundaries, polls Outstanding while
// draining, and calls Close.
type Engine interface {
	// Name is the engine's name as reported ("goroutine", "epoll").
	Name() string
	// Pace sets the send schedule of every connection, present and future,
	// from fromNs on: open loop at ph.PerConnRate, or closed loop with
	// ph.InFlight outstanding, payloads of ph.Size bytes.
	Pace(fromNs int64, ph plan.Phase)
	// Scale opens or retires connections until n are open, opening at most
	// rate per second (0: no limit). It returns when every dial it started has
	// finished, or when ctx is done.
	Scale(ctx context.Context, n int, rate float64) error
	// Stop ends sending: no message intended at or after atNs is sent.
	Stop(atNs int64)
	// Outstanding is the number of messages sent and not yet answered or
	// counted lost, plus connections that still owe scheduled sends.
	Outstanding() int64
	// Close closes every connection, counts messages still awaited as in
	// flight (or lost, for UDP past the timeout) and waits for goroutines.
	Close()
}

// ErrNoTLS is New's answer to the epoll engine with a wss:// target: a
// configuration error.
var ErrNoTLS = errors.New("the epoll engine does not speak TLS; use --engine goroutine for wss:// targets")

// Default is the engine a run uses unless told otherwise: epoll where the
// system has it, goroutine elsewhere.
func Default() string {
	if epollSupported {
		return "epoll"
	}
	return "goroutine"
}

// Check reports whether name ("" for Default) is an engine New can make on
// this system.
func Check(name string) error {
	switch name {
	case "", "goroutine":
		return nil
	case "epoll":
		if epollSupported {
			return nil
		}
		return fmt.Errorf("engine %q needs Linux (want goroutine)", name)
	}
	if epollSupported {
		return fmt.Errorf("unknown engine %q (want epoll or goroutine)", name)
	}
	return fmt.Errorf("unknown engine %q (want goroutine)", name)
}

// New returns the named engine ("" for Default).
func New(name string, cfg Config) (Engine, error) {
	if err := Check(name); err != nil {
		return nil, err
	}
	if name == "" {
		name = Default()
		if cfg.Plan.Target.TLS {
			name = "goroutine" // the event loops do not speak TLS
		}
	}
	if name == "epoll" {
		return NewEpoll(cfg)
	}
	return NewGoroutine(cfg), nil
}

// Timeline is when each stage of a run happened, ns on the run clock.
type Timeline struct {
	RampEnd     int64
	Start       int64 // measured window start (end of warm-up)
	End         int64 // measured window end (last scheduled send)
	DrainEnd    int64
	PhaseStarts []int64 // one per phase that began
	Interrupted bool
	// Gone is true when the run stopped early because no connection was
	// left open and none was being opened: every one had failed or
	// dropped. End is then when that was found.
	Gone bool
}

// goneCheck is how often Drive looks for a run with no connection left.
const goneCheck = 5 * time.Millisecond

// Hooks lets the runner follow the timeline.
type Hooks struct {
	// Phase is called when phase i begins (-1: ramp and warm-up).
	Phase func(i int, startNs int64)
}

// Drive runs p on e: it paces phase 0 from the start, ramps to its
// connections, waits the warm-up, opens the measured window, runs each phase
// for its duration (scaling and re-pacing at each boundary), stops sending,
// drains replies for up to p.Timeout, and closes. When ctx is cancelled it
// stops at once, closes and returns the timeline so far with Interrupted
// set; when no connection is left (after the first ramp, every connection
// has failed or dropped, and no ramp is opening more), likewise with Gone
// set.
func Drive(ctx context.Context, e Engine, p *plan.Plan, clk Clock, set *metrics.Set, h Hooks) Timeline {
	var tl Timeline
	phase := func(i int, ns int64) {
		if h.Phase != nil {
			h.Phase(i, ns)
		}
	}
	var ramping atomic.Bool // a later phase's Scale is opening connections
	gone := func() bool { return set.Open() == 0 && !ramping.Load() }
	stopNow := func() Timeline {
		now := clk.Now()
		e.Stop(now)
		if tl.Start == 0 || tl.Start > now {
			tl.Start = now // stopped before the measured window began
		}
		tl.End, tl.DrainEnd = now, now
		tl.Interrupted = ctx.Err() != nil || !tl.Gone
		e.Close()
		return tl
	}
	// sleepUntil waits until the clock reads ns; false if the run must
	// stop first (ctx ended, or no connection is left: tl.Gone).
	sleepUntil := func(ns int64) bool {
		ok, lost := waitUntil(ctx, clk, ns, gone)
		tl.Gone = lost
		return ok
	}

	phase(-1, 0)
	e.Pace(0, p.Phases[0])
	if err := e.Scale(ctx, p.Phases[0].Conns, p.Phases[0].ConnectRate); err != nil || ctx.Err() != nil {
		return stopNow()
	}
	if gone() {
		tl.Gone = true
		return stopNow()
	}
	// Give the ramp's garbage (handshake buffers, dialer goroutine stacks)
	// back to the system before the warm-up, so that what the process holds
	// from now on is what its connections hold. The pause falls before the
	// measured window.
	runtime.GC() // pooled handshake buffers survive one collection
	debug.FreeOSMemory()
	tl.RampEnd = clk.Now()
	tl.Start = tl.RampEnd + int64(p.Warmup)
	// Set before it begins, so that every message intended at or after
	// Start is classified as measured on both its send and its reply.
	set.Win.SetStart(tl.Start)
	if !sleepUntil(tl.Start) {
		return stopNow()
	}

	// The whole timeline is known now: publish every phase's pacing and the
	// stop time in advance, so that a connection running late keeps each
	// phase's rate and sends nothing scheduled after the end.
	starts := make([]int64, len(p.Phases))
	at := tl.Start
	for i, ph := range p.Phases {
		starts[i] = at
		if i > 0 {
			e.Pace(at, ph)
		}
		at += int64(ph.Duration)
	}
	tl.End = at
	e.Stop(tl.End)

	// Ramps inside a later phase stop at the end of the window.
	scaleCtx, cancelScale := context.WithDeadline(ctx, clk.At(tl.End))
	defer cancelScale()
	scaleDone := make(chan struct{})
	close(scaleDone)
	for i, ph := range p.Phases {
		if !sleepUntil(starts[i]) {
			cancelScale()
			<-scaleDone
			return stopNow()
		}
		tl.PhaseStarts = append(tl.PhaseStarts, starts[i])
		phase(i, starts[i])
		if i > 0 && ph.Conns != p.Phases[i-1].Conns {
			// Ramp inside the phase; the previous ramp has had its phase
			// to finish.
			<-scaleDone
			scaleDone = make(chan struct{})
			ramping.Store(true)
			go func(n int, rate float64, done chan struct{}) {
				defer close(done)
				defer ramping.Store(false)
				_ = e.Scale(scaleCtx, n, rate)
			}(ph.Conns, ph.ConnectRate, scaleDone)
		}
	}
	if !sleepUntil(tl.End) {
		cancelScale()
		<-scaleDone
		return stopNow()
	}
	<-scaleDone

	deadline := tl.End + int64(p.Timeout)
	for e.Outstanding() > 0 && clk.Now() < deadline && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	tl.DrainEnd = clk.Now()
	tl.Interrupted = ctx.Err() != nil
	e.Close()
	return tl
}

// waitUntil waits until the clock reads ns. It returns false if ctx ended
// first, or if gone reported true (checked every goneCheck), and then
// whether it was gone.
func waitUntil(ctx context.Context, clk Clock, ns int64, gone func() bool) (ok, wasGone bool) {
	if gone() {
		return false, true
	}
	d := time.Duration(ns - clk.Now())
	if d <= 0 {
		return ctx.Err() == nil, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(goneCheck)
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			return true, false
		case <-ctx.Done():
			return false, false
		case <-tick.C:
			if gone() {
				return false, true
			}
		}
	}
}
