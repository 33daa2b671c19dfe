package metrics

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sockbench/sockbench/internal/result"
)

// Set is all the recorders of one run, the open-connection gauge and the
// roll-ups. Interval and Snapshot are called by one collector goroutine.
type Set struct {
	Win  *Window
	recs []*Recorder
	open atomic.Int64
	agg  [numHists]*hdr.Histogram // interval roll-up scratch

	// The first messages the target sent that could not be used (Reject).
	rejN    atomic.Int32 // taken, or being taken
	rejMu   sync.Mutex
	rejList []result.Rejected
}

// Rejecting reports whether Reject would still keep a message: fewer than
// result.MaxRejected are kept. Callers check it before they build a
// reason, so that a stream of bad replies costs nothing past the first few.
func (s *Set) Rejecting() bool { return s.rejN.Load() < result.MaxRejected }

// Reject keeps msg, of kind (result.RejectUnparsed, ...), that came on
// connection conn at ns, with the reason it could not be used: its first
// result.RejectedBytes bytes are copied. Past result.MaxRejected it does
// nothing.
func (s *Set) Reject(kind string, conn uint32, at int64, msg []byte, reason string) {
	if !s.Rejecting() || s.rejN.Add(1) > result.MaxRejected {
		return
	}
	x := result.Rejected{Kind: kind, Conn: conn, AtNs: at, Reason: reason, Length: len(msg),
		Bytes: slices.Clone(msg[:min(len(msg), result.RejectedBytes)])}
	s.rejMu.Lock()
	s.rejList = append(s.rejList, x)
	s.rejMu.Unlock()
}

// Rejected is the messages kept by Reject, in the order they arrived.
func (s *Set) Rejected() []result.Rejected {
	s.rejMu.Lock()
	defer s.rejMu.Unlock()
	out := slices.Clone(s.rejList)
	slices.SortStableFunc(out, func(a, b result.Rejected) int { return cmp.Compare(a.AtNs, b.AtNs) })
	return out
}

// NewSet returns n recorders sharing one window.
func NewSet(n int) *Set {
	s := &Set{Win: NewWindow()}
	for range n {
		s.recs = append(s.recs, newRecorder(s.Win))
	}
	for i := range numHists {
		s.agg[i] = result.NewHistogram()
	}
	return s
}

// Len is the number of recorders.
func (s *Set) Len() int { return len(s.recs) }

// Recorder returns recorder i modulo Len, so callers may pass any
// connection or loop number.
func (s *Set) Recorder(i int) *Recorder { return s.recs[i%len(s.recs)] }

// AddOpen moves the open-connection gauge by d.
func (s *Set) AddOpen(d int64) { s.open.Add(d) }

// Open is the number of connections open now.
func (s *Set) Open() int64 { return s.open.Load() }

// Tick is one interval's roll-up, before the runner adds phase and timing.
type Tick struct {
	Sent, Received, Lost, Errors int64
	Latency, SendLag             *hdr.Histogram // valid until the next Interval call
}

// Interval takes and resets every recorder's interval data.
func (s *Set) Interval() Tick {
	for i := range numHists {
		s.agg[i].Reset()
	}
	var t Tick
	for _, r := range s.recs {
		r.mu.Lock()
		r.ivl, r.spare = r.spare, r.ivl
		ic := r.ic
		r.ic = counts{}
		r.mu.Unlock()
		for i := range numHists {
			s.agg[i].Merge(r.spare[i])
			r.spare[i].Reset()
		}
		t.Sent += ic.sent
		t.Received += ic.received
		t.Lost += ic.lost
		for _, e := range ic.errors {
			t.Errors += e
		}
	}
	t.Latency, t.SendLag = s.agg[hLatency], s.agg[hSendLag]
	return t
}

// Snapshot merges every recorder into the run's counters and histograms.
// It may be called while recorders are still written to (for an interrupted
// run); the figures are then a consistent view per recorder.
func (s *Set) Snapshot() (result.Counters, map[string]*result.Histogram, error) {
	var hs [numHists]*hdr.Histogram
	for i := range numHists {
		hs[i] = result.NewHistogram()
	}
	var c counts
	for _, r := range s.recs {
		r.mu.Lock()
		for i := range numHists {
			hs[i].Merge(r.cum[i])
		}
		rc := r.c
		r.mu.Unlock()
		c.add(&rc)
	}
	out := result.Counters{
		ConnsOpened: c.opened, ConnsFailed: c.failed, ConnsDropped: c.dropped, ConnsClosed: c.closed,
		Sent: c.sent, Received: c.received, Lost: c.lost, InFlight: c.inflight,
		Duplicates: c.anomalies[Duplicate], Reordered: c.anomalies[Reordered],
		Late: c.anomalies[Late], Unexpected: c.anomalies[Unexpected],
		HeldBack: c.held, Unsent: c.unsent,
		WarmupSent: c.warmSent, WarmupReceived: c.warmRecv, WarmupLost: c.warmLost, WarmupInFlight: c.warmWait,
		WarmupDuplicates: c.warmAnomalies[Duplicate], WarmupReordered: c.warmAnomalies[Reordered],
		WarmupLate: c.warmAnomalies[Late], WarmupUnexpected: c.warmAnomalies[Unexpected],
		BytesSent: c.bytesSent, BytesReceived: c.bytesRecv,
		Errors: map[string]int64{},
	}
	for i, n := range c.errors {
		if n > 0 {
			out.Errors[ErrorClass(i).String()] = n
		}
	}
	m := make(map[string]*result.Histogram, numHists)
	for i, h := range hs {
		x, err := result.FromHDR(h)
		if err != nil {
			return out, nil, err
		}
		m[histNames[i]] = x
	}
	return out, m, nil
}

func (c *counts) add(o *counts) {
	c.sent += o.sent
	c.received += o.received
	c.lost += o.lost
	c.inflight += o.inflight
	for i := range c.anomalies {
		c.anomalies[i] += o.anomalies[i]
		c.warmAnomalies[i] += o.warmAnomalies[i]
	}
	c.held += o.held
	c.unsent += o.unsent
	c.warmSent += o.warmSent
	c.warmRecv += o.warmRecv
	c.warmLost += o.warmLost
	c.warmWait += o.warmWait
	c.bytesSent += o.bytesSent
	c.bytesRecv += o.bytesRecv
	c.opened += o.opened
	c.failed += o.failed
	c.dropped += o.dropped
	c.closed += o.closed
	for i := range c.errors {
		c.errors[i] += o.errors[i]
	}
}
