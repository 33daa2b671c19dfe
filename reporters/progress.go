package reporters

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sockbench/sockbench/internal/result"
)

// ProgressMode is how a run shows its progress on stderr.
type ProgressMode string

// Progress modes. ProgressAuto is resolved by the caller to ProgressTTY when
// the writer is a terminal and to ProgressPlain otherwise.
const (
	ProgressAuto  ProgressMode = "auto"
	ProgressTTY   ProgressMode = "tty"   // one status line rewritten in place each interval
	ProgressPlain ProgressMode = "plain" // one line per interval, for logs
	ProgressOff   ProgressMode = "off"   // nothing
)

// ParseProgressMode checks a --progress value.
func ParseProgressMode(s string) (ProgressMode, error) {
	switch m := ProgressMode(s); m {
	case ProgressAuto, ProgressTTY, ProgressPlain, ProgressOff:
		return m, nil
	}
	return "", fmt.Errorf("unknown progress mode %q (want auto, tty, plain or off)", s)
}

// clearEOL is the ANSI "erase to end of line" sequence: after a carriage
// return and the new text it wipes what is left of a longer previous line.
const clearEOL = "\x1b[K"

// ProgressPrinter shows a run's intervals (about one a second) as it runs.
// It is safe to call from the goroutine that collects intervals while
// another calls Done.
type ProgressPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	mode  ProgressMode
	total time.Duration // planned length of the run, for "elapsed/total"; 0 if unknown
	open  bool          // tty: a status line is on screen without its newline
}

// NewProgress returns a printer writing to w in mode (ProgressTTY,
// ProgressPlain or ProgressOff; resolve ProgressAuto first). total is the
// planned length of the run (ramp, warm-up and measured phases), shown as
// the denominator of the elapsed time on a terminal.
func NewProgress(w io.Writer, mode ProgressMode, total time.Duration) *ProgressPrinter {
	return &ProgressPrinter{w: w, mode: mode, total: total}
}

// Interval shows one interval: in plain mode as a line of its own, on a
// terminal by rewriting the status line in a single write (carriage return,
// text, erase to end of line), so that it does not flicker.
func (p *ProgressPrinter) Interval(iv result.Interval) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case ProgressPlain:
		Progress(p.w, iv)
	case ProgressTTY:
		io.WriteString(p.w, "\r"+statusLine(iv, p.total)+clearEOL)
		p.open = true
	}
}

// Done ends the status line on a terminal so that what is printed next
// starts on a line of its own. Call it before printing anything else to
// the same terminal; it is a no-op in the other modes and when called twice.
func (p *ProgressPrinter) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		io.WriteString(p.w, "\n")
		p.open = false
	}
}

// statusLine is the terminal status: elapsed/total seconds, phase, open
// connections, send rate against the plan and receive rate in msg/s, the
// interval's latency p50/p99, the messages counted lost and its errors.
func statusLine(iv result.Interval, total time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs", float64(iv.TNs)/1e9)
	if total > 0 {
		fmt.Fprintf(&b, "/%.1fs", total.Seconds())
	}
	fmt.Fprintf(&b, "  %-8s conns %d  send %.0f", iv.Phase, iv.OpenConns, iv.SendRate)
	if iv.PlannedRate > 0 {
		fmt.Fprintf(&b, "/%.0f", iv.PlannedRate)
	}
	fmt.Fprintf(&b, " msg/s  recv %.0f msg/s  p50 %s  p99 %s  lost %d  errors %d", iv.RecvRate, ivDur(iv.P50Ns, iv.Received), ivDur(iv.P99Ns, iv.Received), iv.Lost, iv.Errors)
	return b.String()
}
