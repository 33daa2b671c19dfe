// Package metrics holds the recorders: HDR histograms and exact counters kept
// per writer (an event loop, or a shard of connections in the goroutine
// engine), rolled up each second into the interval series and at the end into
// the Result. Every value is in nanoseconds on the run's monotonic clock.
package metrics

import (
	"math"
	"sync"
	"sync/atomic"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sockbench/sockbench/internal/result"
)

// Histogram indexes.
const (
	hLatency = iota
	hService
	hConnect
	hSendLag
	numHists
)

var histNames = [numHists]string{result.Latency, result.ServiceTime, result.Connect, result.SendLag}

// Window decides which messages are measured: those whose intended send time
// is at or after Start. Start is unknown until the first ramp and the warm-up
// are over, so until it is set every message is a warm-up message.
type Window struct{ start atomic.Int64 }

// NewWindow returns a window whose measured part has not begun.
func NewWindow() *Window {
	w := &Window{}
	w.start.Store(math.MaxInt64)
	return w
}

// SetStart opens the measured window at ns.
func (w *Window) SetStart(ns int64) { w.start.Store(ns) }

// Measured reports whether a message intended for ns is measured.
func (w *Window) Measured(ns int64) bool { return ns >= w.start.Load() }

// counts are a recorder's exact counters. Message counts come in two
// halves: the measured window's, and the warm-up's (warm*), so that nothing
// the warm-up did leaks into the window's figures.
type counts struct {
	sent, received, lost, inflight         int64
	anomalies                              [numAnomalies]int64
	held, unsent                           int64
	warmSent, warmRecv, warmLost, warmWait int64
	warmAnomalies                          [numAnomalies]int64
	bytesSent, bytesRecv                   int64
	opened, failed, dropped, closed        int64
	errors                                 [NumErrorClasses]int64
}

// Recorder is one writer's histograms and counters. Its methods are safe for
// concurrent use (a mutex, uncontended when one event loop owns it) and do
// not allocate.
type Recorder struct {
	win   *Window
	mu    sync.Mutex
	cum   [numHists]*hdr.Histogram // measured window
	ivl   [numHists]*hdr.Histogram // current interval, warm-up included
	spare [numHists]*hdr.Histogram // swapped with ivl each interval; owned by the collector
	c     counts                   // whole run (message counts: measured only)
	ic    counts                   // current interval, warm-up included
	// held: the recorder's one owner holds mu across many calls (Hold).
	// Only the owner reads or writes it.
	held bool
}

// Hold locks the recorder for a run of calls by its only writer (an event
// loop), which then cost no locking each; Release ends the run. The
// roll-ups wait meanwhile, so an owner releases before it sleeps. A
// recorder that is held must have no other writer.
func (r *Recorder) Hold() {
	r.mu.Lock()
	r.held = true
}

// Release ends Hold.
func (r *Recorder) Release() {
	r.held = false
	r.mu.Unlock()
}

func (r *Recorder) lock() {
	if !r.held {
		r.mu.Lock()
	}
}

func (r *Recorder) unlock() {
	if !r.held {
		r.mu.Unlock()
	}
}

func newRecorder(win *Window) *Recorder {
	r := &Recorder{win: win}
	for i := range numHists {
		r.cum[i] = result.NewHistogram()
		r.ivl[i] = result.NewHistogram()
		r.spare[i] = result.NewHistogram()
		// Make the counts resident now: the interval roll-up zeroes whole
		// histograms, so their pages would otherwise become resident during
		// the run and be mistaken for memory that connections hold.
		r.cum[i].Reset()
		r.ivl[i].Reset()
		r.spare[i].Reset()
	}
	return r
}

func record(h *hdr.Histogram, v int64) { recordN(h, v, 1) }

// recordN records v n times, clamped to the histogram's range.
func recordN(h *hdr.Histogram, v, n int64) {
	if v < 0 {
		v = 0
	}
	if v > result.HighestNs {
		v = result.HighestNs
	}
	_ = h.RecordValues(v, n) // cannot fail inside the clamped range
}

// Sent counts one message of n bytes (framing included) handed to the kernel
// at sent ns, scheduled for intended ns. Its send lag is sent-intended.
func (r *Recorder) Sent(intended, sent int64, n int) { r.SentAfter(intended, intended, sent, n) }

// SentAfter counts one message scheduled for intended that the target held
// back until from (a full window, a blocked write) and that went out at sent.
// Send lag, the harness's own lateness, is sent-from; the wait for the
// target stays in the message's latency, which counts from intended.
func (r *Recorder) SentAfter(intended, from, sent int64, n int) {
	lag := sent - max(intended, from)
	r.lock()
	if r.win.Measured(intended) {
		r.c.sent++
		if from > intended {
			r.c.held++
		}
		record(r.cum[hSendLag], lag)
	} else {
		r.c.warmSent++
	}
	r.ic.sent++
	record(r.ivl[hSendLag], lag)
	r.c.bytesSent += int64(n)
	r.unlock()
}

// SentBatch counts msgs messages, bytes in all, that were scheduled for and
// handed to the kernel at the same instant, at (a closed loop's top-up):
// the same as msgs calls of Sent(at, at, ...), with one lock.
func (r *Recorder) SentBatch(at int64, msgs, bytes int) {
	if msgs <= 0 {
		return
	}
	n := int64(msgs)
	r.lock()
	if r.win.Measured(at) {
		r.c.sent += n
		recordN(r.cum[hSendLag], 0, n)
	} else {
		r.c.warmSent += n
	}
	r.ic.sent += n
	recordN(r.ivl[hSendLag], 0, n)
	r.c.bytesSent += int64(bytes)
	r.unlock()
}

// Unsent counts n measured messages that were scheduled but never sent: the
// connection died, or the target held them back until the run ended.
func (r *Recorder) Unsent(n int64) {
	if n <= 0 {
		return
	}
	r.lock()
	r.c.unsent += n
	r.unlock()
}

// Received records one reply of n bytes that arrived at now ns for a message
// scheduled at intended and sent at sent: latency now-intended, service time
// now-sent.
func (r *Recorder) Received(intended, sent, now int64, n int) {
	r.lock()
	if r.win.Measured(intended) {
		r.c.received++
		record(r.cum[hLatency], now-intended)
		record(r.cum[hService], now-sent)
	} else {
		r.c.warmRecv++
	}
	r.ic.received++
	record(r.ivl[hLatency], now-intended)
	r.c.bytesRecv += int64(n)
	r.unlock()
}

// Bytes counts received bytes that carried no measured message (control
// frames, garbage).
func (r *Recorder) Bytes(n int) {
	r.lock()
	r.c.bytesRecv += int64(n)
	r.unlock()
}

// Lost counts n messages that will never be answered; measured says whether
// they belong to the measured window (else the warm-up).
func (r *Recorder) Lost(n int64, measured bool) {
	if n <= 0 {
		return
	}
	r.lock()
	if measured {
		r.c.lost += n
	} else {
		r.c.warmLost += n
	}
	r.ic.lost += n
	r.unlock()
}

// Anomaly kinds for replies that are not plain latency samples.
type Anomaly uint8

// Anomalies.
const (
	Duplicate  Anomaly = iota // a second reply to one message
	Reordered                 // a reply overtaken by a reply to a later message (still a sample)
	Late                      // a reply after its message was counted lost (not a sample)
	Unexpected                // a reply to a message never sent
	numAnomalies
)

// Anomaly counts one event of kind k. measured says whether it belongs to
// the measured window: for a reply matched to a message, whether that
// message was measured; for an unexpected reply, which matches none,
// whether it arrived after the window began.
func (r *Recorder) Anomaly(k Anomaly, measured bool) {
	if k >= numAnomalies {
		return
	}
	r.lock()
	if measured {
		r.c.anomalies[k]++
	} else {
		r.c.warmAnomalies[k]++
	}
	r.unlock()
}

// Connected records a connection established after d ns of connect and
// handshake.
func (r *Recorder) Connected(d int64) {
	r.lock()
	r.c.opened++
	record(r.cum[hConnect], d)
	record(r.ivl[hConnect], d)
	r.unlock()
}

// Opened counts a connection established with no handshake to time (a
// connected UDP socket): it is not a connect-latency sample.
func (r *Recorder) Opened() {
	r.lock()
	r.c.opened++
	r.unlock()
}

// ConnFailed counts a failed connection attempt of class c.
func (r *Recorder) ConnFailed(c ErrorClass) {
	r.lock()
	r.c.failed++
	r.c.errors[c]++
	r.ic.errors[c]++
	r.unlock()
}

// ConnDropped counts an established connection lost to an error of class c.
func (r *Recorder) ConnDropped(c ErrorClass) {
	r.lock()
	r.c.dropped++
	r.c.errors[c]++
	r.ic.errors[c]++
	r.unlock()
}

// ConnClosed counts a connection closed by sockbench.
func (r *Recorder) ConnClosed() {
	r.lock()
	r.c.closed++
	r.unlock()
}

// Error counts an error of class c that did not end a connection (a
// protocol error on one UDP datagram, say).
func (r *Recorder) Error(c ErrorClass) {
	r.lock()
	r.c.errors[c]++
	r.ic.errors[c]++
	r.unlock()
}

// InFlight counts messages still awaited when their connection was closed
// by sockbench (the end of the drain, or an interrupt); measured says
// whether they belong to the measured window (else the warm-up).
func (r *Recorder) InFlight(n int64, measured bool) {
	if n <= 0 {
		return
	}
	r.lock()
	if measured {
		r.c.inflight += n
	} else {
		r.c.warmWait += n
	}
	r.unlock()
}
