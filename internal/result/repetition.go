package result

import (
	"fmt"
	"time"
)

// Repetition is one measured window of a run made with `run --count N`:
// what compare needs from it, without the lossless histograms (those are
// merged into the Result's own). Result.Repetitions holds one per window,
// in the order they ran; a run without --count has none.
type Repetition struct {
	StartedAt time.Time `json:"started_at"` // wall clock, for people
	// Seconds is the measured window's length, s.
	Seconds float64 `json:"seconds"`
	// PlannedRate is the open-loop send rate the plan asked for, msg/s (0
	// in closed loop).
	PlannedRate float64            `json:"planned_rate"`
	Counters    Counters           `json:"counters"`
	Histograms  map[string]Summary `json:"histograms"`          // by the names in Result.Histograms
	Broadcast   *BroadcastSummary  `json:"broadcast,omitempty"` // room broadcast runs only
}

// Summary is a histogram's summary figures, ns, without the histogram
// (Histogram holds one, with the histogram).
type Summary struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p99_9"`
	P9999 int64   `json:"p99_99"`
	Max   int64   `json:"max"`
}

// BroadcastSummary is one repetition's delivery accounting.
type BroadcastSummary struct {
	Expected  int64   `json:"expected"`  // deliveries owed
	Delivered int64   `json:"delivered"` // owed and received once
	FanOut    Summary `json:"fanout"`    // publish to last owed delivery, ns
}

// RepetitionOf summarises a single run as a Repetition.
func RepetitionOf(r *Result) Repetition {
	rep := Repetition{
		StartedAt: r.StartedAt, Seconds: r.Window.Seconds(), PlannedRate: r.PlannedRate(),
		Counters: r.Counters, Histograms: map[string]Summary{},
	}
	for name, h := range r.Histograms {
		if h != nil {
			rep.Histograms[name] = h.Summary
		}
	}
	if b := r.Broadcast; b != nil {
		rep.Broadcast = &BroadcastSummary{Expected: b.Expected, Delivered: b.Delivered}
		if b.FanOut != nil {
			rep.Broadcast.FanOut = b.FanOut.Summary
		}
	}
	return rep
}

// Samples returns the repetitions r holds: its Repetitions when it was run
// with --count, else r itself as the only one.
func (r *Result) Samples() []Repetition {
	if len(r.Repetitions) > 0 {
		return r.Repetitions
	}
	return []Repetition{RepetitionOf(r)}
}

// MeasuredSeconds is the measured time of the run, s: the sum over its
// repetitions, or the window's length for a single run.
func (r *Result) MeasuredSeconds() float64 {
	if len(r.Repetitions) == 0 {
		return r.Window.Seconds()
	}
	var s float64
	for _, rep := range r.Repetitions {
		s += rep.Seconds
	}
	return s
}

// Merge folds the repetitions runs (at least one, each a whole run of the
// same plan) into one Result: the first run's plan, environment, window,
// phases and self-check; the counters summed and the histograms merged over
// all of them, the broadcast accounting too (room by room); the intervals of every run one after
// the other (each run's t_ns shifted by the end of the run before); and
// every run summarised in Repetitions. Thresholds are not re-checked here.
func Merge(runs []*Result) (*Result, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("merge: no runs")
	}
	first := *runs[0]
	m := &first
	m.Histograms = map[string]*Histogram{}
	m.Repetitions = nil
	m.Rejected, m.Stopped = nil, nil
	m.Counters = Counters{Errors: map[string]int64{}}
	hs := map[string][]*Histogram{}
	m.Intervals = nil
	var offset int64 // the intervals of each run follow the last one's
	for _, r := range runs {
		for _, iv := range r.Intervals {
			iv.TNs += offset
			m.Intervals = append(m.Intervals, iv)
		}
		if n := len(r.Intervals); n > 0 {
			offset += r.Intervals[n-1].TNs
		}
		m.Repetitions = append(m.Repetitions, RepetitionOf(r))
		m.Counters.add(r.Counters)
		m.Interrupted = m.Interrupted || r.Interrupted
		if m.Stopped == nil {
			m.Stopped = r.Stopped
		}
		for _, x := range r.Rejected {
			if len(m.Rejected) < MaxRejected {
				m.Rejected = append(m.Rejected, x)
			}
		}
		if m.Aborted == nil {
			m.Aborted = r.Aborted
		}
		for name, h := range r.Histograms {
			hs[name] = append(hs[name], h)
		}
	}
	for name, list := range hs {
		h, err := mergeHistograms(name, list)
		if err != nil {
			return nil, err
		}
		m.Histograms[name] = h
	}
	if m.Broadcast != nil {
		b, err := mergeBroadcast(runs)
		if err != nil {
			return nil, err
		}
		m.Broadcast = b
	}
	return m, nil
}

// mergeHistograms merges list losslessly; name is for errors.
func mergeHistograms(name string, list []*Histogram) (*Histogram, error) {
	sum := NewHistogram()
	for _, h := range list {
		if h == nil {
			continue
		}
		d, err := h.HDR()
		if err != nil {
			return nil, fmt.Errorf("merge %s: %w", name, err)
		}
		sum.Merge(d)
	}
	return FromHDR(sum)
}

// mergeBroadcast sums the runs' delivery accounting, room entry by room
// entry (matched by name), and merges their histograms.
func mergeBroadcast(runs []*Result) (*Broadcast, error) {
	first := runs[0].Broadcast
	out := Broadcast{Namespace: first.Namespace, Rooms: first.Rooms, Subscribers: first.Subscribers, Publishers: first.Publishers}
	var fan []*Histogram
	rooms := map[string]int{}
	var lat, rfan [][]*Histogram
	for _, r := range runs {
		b := r.Broadcast
		if b == nil {
			continue
		}
		out.Publishes += b.Publishes
		out.FannedOut += b.FannedOut
		out.Expected += b.Expected
		out.Delivered += b.Delivered
		out.Missing += b.Missing
		out.Duplicated += b.Duplicated
		out.Extra += b.Extra
		out.Late += b.Late
		out.Complete += b.Complete
		out.Unseen += b.Unseen
		out.Unjoined += b.Unjoined
		fan = append(fan, b.FanOut)
		for _, rm := range b.PerRoom {
			i, ok := rooms[rm.Name]
			if !ok {
				i = len(out.PerRoom)
				rooms[rm.Name] = i
				out.PerRoom = append(out.PerRoom, RoomResult{Name: rm.Name, Rooms: rm.Rooms, Members: rm.Members})
				lat, rfan = append(lat, nil), append(rfan, nil)
			}
			o := &out.PerRoom[i]
			o.Publishes += rm.Publishes
			o.Expected += rm.Expected
			o.Delivered += rm.Delivered
			o.Missing += rm.Missing
			o.Duplicated += rm.Duplicated
			o.Extra += rm.Extra
			lat[i] = append(lat[i], rm.Latency)
			rfan[i] = append(rfan[i], rm.FanOut)
		}
	}
	var err error
	if out.FanOut, err = mergeHistograms("fanout", fan); err != nil {
		return nil, err
	}
	for i := range out.PerRoom {
		o := &out.PerRoom[i]
		if o.Latency, err = mergeHistograms(o.Name+" latency", lat[i]); err != nil {
			return nil, err
		}
		if o.FanOut, err = mergeHistograms(o.Name+" fanout", rfan[i]); err != nil {
			return nil, err
		}
	}
	return &out, nil
}

func (c *Counters) add(o Counters) {
	c.ConnsOpened += o.ConnsOpened
	c.ConnsFailed += o.ConnsFailed
	c.ConnsDropped += o.ConnsDropped
	c.ConnsClosed += o.ConnsClosed
	c.Sent += o.Sent
	c.Received += o.Received
	c.Lost += o.Lost
	c.InFlight += o.InFlight
	c.Duplicates += o.Duplicates
	c.Reordered += o.Reordered
	c.Late += o.Late
	c.Unexpected += o.Unexpected
	c.HeldBack += o.HeldBack
	c.Unsent += o.Unsent
	c.WarmupSent += o.WarmupSent
	c.WarmupReceived += o.WarmupReceived
	c.WarmupLost += o.WarmupLost
	c.WarmupInFlight += o.WarmupInFlight
	c.WarmupDuplicates += o.WarmupDuplicates
	c.WarmupReordered += o.WarmupReordered
	c.WarmupLate += o.WarmupLate
	c.WarmupUnexpected += o.WarmupUnexpected
	c.BytesSent += o.BytesSent
	c.BytesReceived += o.BytesReceived
	for k, v := range o.Errors {
		c.Errors[k] += v
	}
}
