package main

import (
	"io"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/reporters"
)

// progressMode resolves --progress auto: a status line on a terminal, plain
// lines otherwise (a CI log, a file, a pipe).
func progressMode(m reporters.ProgressMode, stderr io.Writer) reporters.ProgressMode {
	if m != reporters.ProgressAuto {
		return m
	}
	if f, ok := stderr.(interface{ Fd() uintptr }); ok && isTerminal(f.Fd()) {
		return reporters.ProgressTTY
	}
	return reporters.ProgressPlain
}

// plannedLength is how long p should take before the drain: the first
// phase's ramp at its connect rate, the warm-up and the measured phases.
func plannedLength(p *plan.Plan) time.Duration {
	d := p.Warmup + p.MeasuredDuration()
	if first := p.Phases[0]; first.ConnectRate > 0 {
		d += time.Duration(float64(first.Conns) / first.ConnectRate * float64(time.Second))
	}
	return d
}

// afterStatus is an output shared with a terminal status line: it ends the
// line before each write, so that a message never lands on the status.
type afterStatus struct {
	progress *reporters.ProgressPrinter
	w        io.Writer
}

func (a afterStatus) Write(b []byte) (int, error) {
	a.progress.Done()
	return a.w.Write(b)
}
