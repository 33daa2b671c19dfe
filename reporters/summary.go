package reporters

import (
	"fmt"
	"strings"

	"github.com/sockbench/sockbench/internal/result"
)

// The parts of a run's summary that the text summary and the HTML report
// show alike: the counters, what went wrong with the target, and the
// messages it sent that sockbench could not use. Each is computed here once.

// counterLines are a run's counters as label/value lines: messages (for
// echo runs; a broadcast run's accounting is broadcastSummary), anomalies,
// held-back sends, rates, the warm-up, connections, bytes and errors. Loss
// stands next to the errors, so that "none" never reads as a clean run.
func counterLines(r *result.Result) []kv {
	c := r.Counters
	var out []kv
	if r.Broadcast == nil {
		msgs := fmt.Sprintf("sent %d, received %d, lost %d", c.Sent, c.Received, c.Lost)
		if c.Lost > 0 && c.Sent > 0 {
			msgs += fmt.Sprintf(" (%s of sent)", share(c.Lost, c.Sent))
		}
		msgs += fmt.Sprintf(", in flight at end %d", c.InFlight)
		if off := c.Sent - c.Received - c.Lost - c.InFlight; off != 0 {
			msgs += fmt.Sprintf(" (UNACCOUNTED %d)", off)
		}
		out = append(out, kv{"messages", msgs})
	}
	if c.Duplicates+c.Reordered+c.Late+c.Unexpected > 0 {
		out = append(out, kv{"anomalies", fmt.Sprintf("duplicates %d, reordered %d, late %d, unexpected %d", c.Duplicates, c.Reordered, c.Late, c.Unexpected)})
	}
	if c.HeldBack+c.Unsent > 0 {
		out = append(out, kv{"held back", fmt.Sprintf("%d sends waited for the target (max_inflight window or a full socket buffer); %d scheduled sends never went out", c.HeldBack, c.Unsent)})
	}
	if secs := r.MeasuredSeconds(); secs > 0 {
		rate := fmt.Sprintf("sent %.0f msg/s", float64(c.Sent)/secs)
		if planned := r.PlannedRate(); planned > 0 {
			rate += fmt.Sprintf(" (planned %.0f, %.1f%%)", planned, 100*float64(c.Sent)/secs/planned)
		}
		out = append(out, kv{"rate", rate + fmt.Sprintf(", received %.0f msg/s", float64(c.Received)/secs)})
	}
	out = append(out,
		kv{"warm-up", warmupLine(&c)},
		kv{"conns", fmt.Sprintf("opened %d, failed %d, dropped %d, closed %d", c.ConnsOpened, c.ConnsFailed, c.ConnsDropped, c.ConnsClosed)},
		kv{"bytes", fmt.Sprintf("sent %d, received %d", c.BytesSent, c.BytesReceived)},
		kv{"errors", errorsLine(r)},
	)
	return out
}

// warmupLine is the warm-up's messages, counted apart from the window's.
func warmupLine(c *result.Counters) string {
	s := fmt.Sprintf("sent %d, received %d", c.WarmupSent, c.WarmupReceived)
	for _, n := range []struct {
		what string
		n    int64
	}{
		{"lost", c.WarmupLost}, {"in flight", c.WarmupInFlight}, {"duplicates", c.WarmupDuplicates},
		{"reordered", c.WarmupReordered}, {"late", c.WarmupLate}, {"unexpected", c.WarmupUnexpected},
	} {
		if n.n > 0 {
			s += fmt.Sprintf(", %s %d", n.what, n.n)
		}
	}
	return s + " (not in the figures above)"
}

// errorsLine is the errors by class, and what was lost beside them: lost
// messages (echo) or missing deliveries (broadcast).
func errorsLine(r *result.Result) string {
	s := r.Counters.ErrorList()
	loss := lossText(r)
	switch {
	case loss == "":
	case s == "none":
		s = "none, but " + loss
	default:
		s += "; and " + loss
	}
	return s
}

// lossText says how much of what was owed never came, or "" if all did.
func lossText(r *result.Result) string {
	c := r.Counters
	if bc := r.Broadcast; bc != nil {
		if bc.Missing == 0 || bc.Expected == 0 {
			return ""
		}
		return fmt.Sprintf("%d of %d deliveries (%s) went missing", bc.Missing, bc.Expected, share(bc.Missing, bc.Expected))
	}
	if c.Lost == 0 || c.Sent == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d messages (%s) were lost", c.Lost, c.Sent, share(c.Lost, c.Sent))
}

// share is n of total as a percentage with three significant digits, or
// "<0.01%" for a share too small for them (never 0% for a nonzero n).
func share(n, total int64) string {
	v := 100 * float64(n) / float64(total)
	if v < 0.01 {
		return "<0.01%"
	}
	return sig3(v) + "%"
}

// stopNotices says why a run ended before its plan did, if it did:
// interrupted, aborted (--abort-on-fail), or stopped with no connection
// left.
func stopNotices(r *result.Result) []string {
	var out []string
	win := r.Window
	if r.Interrupted {
		out = append(out, "INTERRUPTED: partial result, measured up to "+dur(win.EndNs))
	}
	if st := r.Stopped; st != nil {
		out = append(out, fmt.Sprintf("STOPPED at %s: %s; a partial result, measured up to %s", dur(st.AtNs), st.Reason, dur(win.EndNs)))
	}
	if a := r.Aborted; a != nil {
		out = append(out, fmt.Sprintf("ABORTED at %s (--abort-on-fail): %s; %s then; a partial result, measured up to %s",
			dur(a.AtNs), a.Reason, Measured(result.ThresholdResult{Unit: a.Unit, Measured: a.Measured}), dur(win.EndNs)))
	}
	return out
}

// targetWarnings are what the counters say about the target in plain
// words, with a hint where one helps: no reply matched any message, or no
// delivery arrived.
func targetWarnings(r *result.Result) []string {
	c := r.Counters
	var out []string
	if bc := r.Broadcast; bc != nil {
		if bc.Expected > 0 && bc.Delivered == 0 {
			out = append(out, fmt.Sprintf("no delivery arrived of the %d owed: does the target fan each publish out to the room's members, unchanged (docs/protocol.md)?%s", bc.Expected, rejectedHint(r)))
		}
		return out
	}
	sent := c.Sent + c.WarmupSent
	if sent == 0 || c.Received+c.WarmupReceived > 0 {
		return out
	}
	var why string
	switch {
	case c.Late+c.WarmupLate > 0 && c.Unexpected+c.WarmupUnexpected == 0:
		why = fmt.Sprintf("replies came, but every one after the %s loss timeout: raise --timeout to measure them", dur(r.Plan.TimeoutNs))
	case c.BytesReceived == 0:
		why = "the target sent nothing back: does it echo each message, unchanged, on the connection it came on (UDP: to the sending address)? docs/protocol.md gives the bytes"
	default:
		why = fmt.Sprintf("the target sent %d bytes, none of them a reply to a message sent: does it echo each message unchanged (docs/protocol.md)?%s", c.BytesReceived, rejectedHint(r))
	}
	return append(out, fmt.Sprintf("no reply matched any of the %d messages sent: %s", sent, why))
}

func rejectedHint(r *result.Result) string {
	if len(r.Rejected) == 0 {
		return ""
	}
	return " What it sent is shown under \"rejected\"."
}

// rejectedView is one rejected message for people: a heading, and its
// kept bytes as a hex dump with the printable ones as text beside.
type rejectedView struct {
	Head string
	Dump []string
}

func rejectedViews(r *result.Result) []rejectedView {
	var out []rejectedView
	for i, x := range r.Rejected {
		kept := ""
		if len(x.Bytes) < x.Length {
			kept = fmt.Sprintf(", the first %d shown", len(x.Bytes))
		}
		out = append(out, rejectedView{
			Head: fmt.Sprintf("%d. %s, connection %d at %s, %d bytes%s: %s", i+1, x.Kind, x.Conn, dur(x.AtNs), x.Length, kept, x.Reason),
			Dump: hexDump(x.Bytes),
		})
	}
	return out
}

// hexDump is b as `hexdump -C` shows it: 16 bytes a line, offset, hex, and
// the printable ASCII characters (others as '.').
func hexDump(b []byte) []string {
	var out []string
	for off := 0; off < len(b); off += 16 {
		row := b[off:min(off+16, len(b))]
		var hx, txt strings.Builder
		for i := range 16 {
			if i == 8 {
				hx.WriteByte(' ')
			}
			if i < len(row) {
				fmt.Fprintf(&hx, "%02x ", row[i])
			} else {
				hx.WriteString("   ")
			}
		}
		for _, c := range row {
			if c >= 0x20 && c < 0x7f {
				txt.WriteByte(c)
			} else {
				txt.WriteByte('.')
			}
		}
		out = append(out, fmt.Sprintf("%08x  %s |%s|", off, hx.String(), txt.String()))
	}
	return out
}
