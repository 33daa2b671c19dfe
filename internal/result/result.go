// Package result holds a run as data: the Result that `sockbench run` writes
// and that every reporter and gate reads. Its JSON form is the interface
// between a run and everything after it; results/README.md documents it.
package result

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// SchemaVersion is the version of the JSON layout written by this build.
// Readers refuse newer versions.
const SchemaVersion = 3

// Histogram geometry shared by every histogram in a Result: values in
// nanoseconds, trackable from 1 ns to 60 s with 3 significant digits (0.1%
// resolution everywhere from 1 us to 60 s).
const (
	LowestNs  int64 = 1
	HighestNs int64 = 60_000_000_000
	SigFigs         = 3
)

// NewHistogram returns an empty histogram with the Result geometry.
func NewHistogram() *hdr.Histogram { return hdr.New(LowestNs, HighestNs, SigFigs) }

// Histogram names in Result.Histograms.
const (
	Latency     = "latency"      // receive time minus intended send time (open loop: coordinated-omission corrected)
	ServiceTime = "service_time" // receive time minus actual send time
	Connect     = "connect"      // TCP connect plus TLS and WebSocket handshake, every attempt that succeeded
	SendLag     = "send_lag"     // actual send time minus the later of the intended time and when the target let the send go: the harness's own lateness
)

// Result is one run of one scenario.
type Result struct {
	SchemaVersion int                   `json:"schema_version"`
	Scenario      json.RawMessage       `json:"scenario"` // the scenario spec as run, flags applied
	Plan          PlanInfo              `json:"plan"`
	Env           Env                   `json:"env"`
	StartedAt     time.Time             `json:"started_at"` // wall clock, for people; latency never uses it
	Interrupted   bool                  `json:"interrupted"`
	Window        Window                `json:"window"`
	Phases        []PhaseRun            `json:"phases"`
	Counters      Counters              `json:"counters"`
	Histograms    map[string]*Histogram `json:"histograms"`
	Intervals     []Interval            `json:"intervals"`
	Self          Self                  `json:"self"`
	Thresholds    []string              `json:"thresholds,omitempty"`        // as declared
	Checks        []ThresholdResult     `json:"threshold_results,omitempty"` // each threshold checked against this run
	// Broadcast is the delivery accounting of a room broadcast run (nil
	// for echo runs). In a broadcast run Counters.Sent counts publishes,
	// Counters.Received deliveries, and the latency histogram is
	// publish-to-delivery: receive time minus the publish's intended time.
	Broadcast *Broadcast `json:"broadcast,omitempty"`
	// Repetitions summarises each measured window of a `run --count N`
	// (N >= 2), in order; the fields above are then the merged view (see
	// Merge). Empty for a single run.
	Repetitions []Repetition `json:"repetitions,omitempty"`
	// Stopped says why a run ended before its plan did because the target
	// left nothing to measure: every connection was lost (or none opened)
	// and none remained. The rest of the Result is then partial, measured
	// up to Window.EndNs, and the run counts as not carried out (exit 3).
	Stopped *Stop `json:"stopped,omitempty"`
	// Rejected are the first messages from the target that sockbench could
	// not parse or match to a message it sent (at most MaxRejected), and
	// what the target answered to a failed WebSocket handshake, so that a
	// user can see what their server actually sent.
	Rejected []Rejected `json:"rejected,omitempty"`
	// Aborted says why a run with --abort-on-fail stopped early: a threshold
	// failed during the run. The rest of the Result is then partial, measured
	// up to Window.EndNs. Nil for a run that ran its plan (or was
	// interrupted).
	Aborted *Abort `json:"aborted,omitempty"`
}

// Broadcast is a room broadcast run's delivery accounting. Every measured
// publish (intended time in the measured window) owes one delivery to each
// member of its room when the server fanned it out, the publisher excluded
// unless it asked for its own copy. Counts are exact: membership is known
// as ranges of room sequence numbers (docs/protocol.md).
type Broadcast struct {
	Namespace   string `json:"namespace"`
	Rooms       int    `json:"rooms"`
	Subscribers int    `json:"subscribers"` // connections that joined rooms
	Publishers  int    `json:"publishers"`  // connections that publish (in chat, every member)

	Publishes  int64 `json:"publishes"`  // measured publishes sent
	FannedOut  int64 `json:"fanned_out"` // measured publishes the server numbered (seen by at least one member, or between two that were)
	Expected   int64 `json:"expected"`   // deliveries owed by the fanned-out publishes
	Delivered  int64 `json:"delivered"`  // owed and received (once)
	Missing    int64 `json:"missing"`    // owed and never received
	Duplicated int64 `json:"duplicated"` // received again by a member that already had it
	Extra      int64 `json:"extra"`      // received by a connection that was not a member when it was fanned out
	Late       int64 `json:"late"`       // received after its publish was settled (loss timeout); counted missing too
	Complete   int64 `json:"complete"`   // fanned-out publishes whose every owed delivery arrived
	// Unseen is measured publishes no member received and whose number no
	// member saw: whom they were owed cannot be known, so each counts as
	// owed to (and missed by) the room's members at its last numbered
	// publish, in Expected and Missing.
	Unseen int64 `json:"unseen"`
	// Unjoined is subscribers whose join the server never answered (by the
	// end of the run): they were owed nothing, which may hide a broken
	// server, so reports warn about it.
	Unjoined int64 `json:"unjoined"`

	// FanOut is fan-out completion: the publish's intended send time to its
	// last owed delivery, one sample per complete publish, ns.
	FanOut *Histogram `json:"fanout"`
	// PerRoom is the K largest rooms by subscribers, each on its own, then
	// the rest together as one entry named "(N other rooms)".
	PerRoom []RoomResult `json:"per_room"`
}

// DeliveryRatio is Delivered/Expected (1 when nothing was owed).
func (b *Broadcast) DeliveryRatio() float64 {
	if b.Expected == 0 {
		return 1
	}
	return float64(b.Delivered) / float64(b.Expected)
}

// RoomResult is one room's (or the aggregate of small rooms') accounting.
type RoomResult struct {
	Name       string     `json:"name"`
	Rooms      int        `json:"rooms"`   // 1, or how many rooms the aggregate holds
	Members    int        `json:"members"` // subscribers planned
	Publishes  int64      `json:"publishes"`
	Expected   int64      `json:"expected"`
	Delivered  int64      `json:"delivered"`
	Missing    int64      `json:"missing"`
	Duplicated int64      `json:"duplicated"`
	Extra      int64      `json:"extra"`
	Latency    *Histogram `json:"latency"` // publish-to-delivery, ns
	FanOut     *Histogram `json:"fanout"`  // publish to last owed delivery, ns
}

// ThresholdResult is one threshold checked against a run.
type ThresholdResult struct {
	Expr     string  `json:"expr"`             // as written
	Source   string  `json:"source,omitempty"` // file:line:col, or "--threshold"
	Metric   string  `json:"metric"`
	Measured float64 `json:"measured"` // in Unit; 0 when Reason is set
	Unit     string  `json:"unit"`     // "ns", "ratio" or "msg/s"
	Pass     bool    `json:"pass"`
	// Reason says why the metric could not be measured (no samples, no
	// messages sent); such a threshold fails.
	Reason string `json:"reason,omitempty"`
	// Room names the worst per-room entry for the room metrics
	// (room_latency, room_delivery): the one whose value is Measured.
	Room string `json:"room,omitempty"`
}

// Abort is the threshold that stopped a run early (run --abort-on-fail),
// as it was checked on the run's cumulative data at that moment.
type Abort struct {
	Expr     string  `json:"expr"`             // the threshold as written
	Source   string  `json:"source,omitempty"` // where it was written, as in ThresholdResult
	Metric   string  `json:"metric"`
	Measured float64 `json:"measured"` // in Unit, on the data up to AtNs
	Unit     string  `json:"unit"`     // "ns", "ratio" or "msg/s"
	AtNs     int64   `json:"at_ns"`    // ns since the run's start when the failure was found
	// WindowNs is how much of the measured window had passed then, ns (0
	// if it had not begun: a connect threshold can fail during the ramp).
	WindowNs int64 `json:"window_ns"`
	// Final is true when no later data could have made the threshold pass
	// (a max over its limit, a min under it); false when the verdict is a
	// judgement on partial data (a percentile, a mean, a ratio or a rate
	// failing after --abort-delay of the measured window).
	Final bool `json:"final"`
	// Reason says the same in plain words.
	Reason string `json:"reason"`
}

// Stop is why a run stopped early without being asked to (Result.Stopped).
type Stop struct {
	AtNs   int64  `json:"at_ns"`  // ns since the run's start
	Reason string `json:"reason"` // in plain words, with the counts that led to it
}

// Kinds of Rejected messages.
const (
	RejectUnparsed  = "unparsed"  // not a valid frame, datagram or measurement header
	RejectUnmatched = "unmatched" // a well-formed reply that answers no message sent on its connection
	RejectHandshake = "handshake" // what the target answered to a WebSocket upgrade it did not accept
)

// MaxRejected is how many Rejected messages a run keeps; RejectedBytes is
// how many bytes of each.
const (
	MaxRejected   = 5
	RejectedBytes = 256
)

// Rejected is one message from the target that sockbench could not use.
type Rejected struct {
	Kind   string `json:"kind"`   // RejectUnparsed, RejectUnmatched or RejectHandshake
	Conn   uint32 `json:"conn"`   // the connection id it came on
	AtNs   int64  `json:"at_ns"`  // ns since the run's start
	Reason string `json:"reason"` // why it could not be used
	Length int    `json:"length"` // bytes in the message (or what was read of it)
	Bytes  []byte `json:"bytes"`  // its first RejectedBytes bytes (base64 in JSON)
}

// PlanInfo is what the engine was asked to do.
type PlanInfo struct {
	Name      string `json:"name"`
	Target    string `json:"target"`          // URL dialed
	Embedded  bool   `json:"embedded_target"` // the in-process reference server
	Transport string `json:"transport"`       // ws, wss, tcp, udp
	Framing   string `json:"framing,omitempty"`
	Mode      string `json:"mode"` // open or closed loop
	Engine    string `json:"engine"`
	Loops     int    `json:"loops,omitempty"` // event loops of the epoll engine
	TimeoutNs int64  `json:"timeout_ns"`      // loss timeout and drain window
	WarmupNs  int64  `json:"warmup_ns"`
}

// Env is where the run happened.
type Env struct {
	Sockbench  string `json:"sockbench_version"`
	Go         string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Host       string `json:"host"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	OpenFiles  uint64 `json:"open_files_limit"`
}

// Window is the measured window in ns since the run's start on its monotonic
// clock. Messages whose intended send time falls inside it are measured;
// warm-up messages and connection ramp are before Start.
type Window struct {
	RampEndNs  int64 `json:"ramp_end_ns"` // all first-phase connections done (open or failed)
	StartNs    int64 `json:"start_ns"`    // end of warm-up
	EndNs      int64 `json:"end_ns"`      // last scheduled send
	DrainEndNs int64 `json:"drain_end_ns"`
}

// Duration is the measured window's length in seconds.
func (w Window) Seconds() float64 { return float64(w.EndNs-w.StartNs) / 1e9 }

// PlannedRate is the open-loop send rate the plan asked for over the whole
// measured window, msg/s: each phase's planned rate weighted by its
// duration. 0 for closed loop.
func (r *Result) PlannedRate() float64 {
	var msgs, ns float64
	for _, ph := range r.Phases {
		d := float64(ph.EndNs - ph.StartNs)
		msgs += ph.PlannedRate * d / 1e9
		ns += d
	}
	if ns == 0 {
		return 0
	}
	return msgs / (ns / 1e9)
}

// PhaseRun is one measured phase as it ran.
type PhaseRun struct {
	Name        string  `json:"name"`
	StartNs     int64   `json:"start_ns"`
	EndNs       int64   `json:"end_ns"`
	Conns       int     `json:"conns"`
	PlannedRate float64 `json:"planned_rate"` // msg/s with all conns open (open loop)
	Size        int     `json:"size"`
	InFlight    int     `json:"inflight,omitempty"`
}

// Counters are exact counts for the run. Message counts cover the measured
// window; connection, byte and error counts cover the whole run.
type Counters struct {
	ConnsOpened  int64 `json:"conns_opened"`  // connections established (handshake done)
	ConnsFailed  int64 `json:"conns_failed"`  // connection attempts that failed
	ConnsDropped int64 `json:"conns_dropped"` // established connections lost mid-run (peer close, reset, error)
	ConnsClosed  int64 `json:"conns_closed"`  // connections closed by sockbench (phase change or end of run)

	Sent       int64 `json:"sent"`       // measured messages written to the socket (counted when the write is issued)
	Received   int64 `json:"received"`   // measured replies, each one latency sample
	Lost       int64 `json:"lost"`       // measured messages with no reply within the loss timeout, or on a connection that died
	InFlight   int64 `json:"in_flight"`  // measured messages still awaited, and younger than the loss timeout, when sockbench closed their connection
	Duplicates int64 `json:"duplicates"` // replies to a measured message already answered
	Reordered  int64 `json:"reordered"`  // replies to measured messages arriving after a reply to a later message on the same connection (still samples)
	Late       int64 `json:"late"`       // replies to measured messages arriving after the message was counted lost (not latency samples; never more than Lost)
	Unexpected int64 `json:"unexpected"` // replies, arriving in the window, that match no message sent (bad header, foreign connection or sequence number)
	HeldBack   int64 `json:"held_back"`  // measured messages sent late because the target held them back (full max_inflight window, blocked write)
	Unsent     int64 `json:"unsent"`     // measured messages scheduled but never sent: their connection died, or the target held them back until the end

	// The warm-up's messages, counted as the window's are but apart from
	// them: none of them is in the counts above or in the histograms.
	WarmupSent       int64 `json:"warmup_sent"`
	WarmupReceived   int64 `json:"warmup_received"`
	WarmupLost       int64 `json:"warmup_lost"`
	WarmupInFlight   int64 `json:"warmup_in_flight"`
	WarmupDuplicates int64 `json:"warmup_duplicates"`
	WarmupReordered  int64 `json:"warmup_reordered"`
	WarmupLate       int64 `json:"warmup_late"`
	WarmupUnexpected int64 `json:"warmup_unexpected"`

	BytesSent     int64 `json:"bytes_sent"` // framing included
	BytesReceived int64 `json:"bytes_received"`

	Errors map[string]int64 `json:"errors"` // by class: refused, timeout, reset, closed_by_peer, handshake, tls, protocol, unreachable, other
}

// ErrorList is the error counts as "refused 2, reset 1", classes sorted by
// name, or "none".
func (c *Counters) ErrorList() string {
	if len(c.Errors) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(c.Errors))
	for k, v := range c.Errors {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// ErrorsTotal is the sum of all error classes.
func (c *Counters) ErrorsTotal() int64 {
	var n int64
	for _, v := range c.Errors {
		n += v
	}
	return n
}

// Interval is one second (or less, for the last) of the run, warm-up included.
type Interval struct {
	TNs          int64   `json:"t_ns"` // end of the interval since the run's start
	Phase        string  `json:"phase"`
	Sent         int64   `json:"sent"`
	Received     int64   `json:"received"`
	Lost         int64   `json:"lost"`         // messages counted lost in the interval (loss timeouts, dead connections)
	SendRate     float64 `json:"send_rate"`    // msg/s
	RecvRate     float64 `json:"recv_rate"`    // msg/s
	PlannedRate  float64 `json:"planned_rate"` // msg/s for the connections open
	OpenConns    int64   `json:"open_conns"`
	Errors       int64   `json:"errors"`
	P50Ns        int64   `json:"p50_ns"` // latency of replies received in the interval
	P99Ns        int64   `json:"p99_ns"`
	MaxNs        int64   `json:"max_ns"`
	SendLagP99Ns int64   `json:"send_lag_p99_ns"`
	SendLagMaxNs int64   `json:"send_lag_max_ns"`
	RSSBytes     int64   `json:"rss_bytes,omitempty"` // sockbench's resident memory at the end of the interval (Linux)
}

// Self is the harness watching itself.
type Self struct {
	CPUUserNs   int64    `json:"cpu_user_ns"`
	CPUSystemNs int64    `json:"cpu_system_ns"`
	CPUPercent  float64  `json:"cpu_percent"` // of all cores, over the run
	Saturated   bool     `json:"saturated"`   // the load generator, not the target, limited the run
	Warnings    []string `json:"warnings,omitempty"`
	// Memory (Linux): resident set size before the first connection, and
	// at the last interval with the most connections open (PeakConns);
	// RSSPerConnBytes is the difference divided by them. With the embedded
	// server it includes the server's side of each connection.
	RSSStartBytes   int64 `json:"rss_start_bytes,omitempty"`
	RSSPeakBytes    int64 `json:"rss_at_peak_conns_bytes,omitempty"`
	PeakConns       int64 `json:"peak_conns,omitempty"`
	RSSPerConnBytes int64 `json:"rss_per_conn_bytes,omitempty"`
}

// Histogram is one HDR histogram, stored losslessly (HdrHistogram V2
// compressed, base64) with a summary for readers that do not decode it.
type Histogram struct {
	Unit string `json:"unit"` // always "ns"
	Summary
	StdDev  float64 `json:"stddev"` // ns
	Encoded string  `json:"hdr"`    // base64 V2 compressed encoding
	h       *hdr.Histogram
}

// FromHDR summarises and encodes h.
func FromHDR(h *hdr.Histogram) (*Histogram, error) {
	enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode histogram: %w", err)
	}
	return &Histogram{
		Unit: "ns", StdDev: h.StdDev(), Encoded: string(enc), h: h,
		Summary: Summary{
			Count: h.TotalCount(), Min: h.Min(), Mean: h.Mean(),
			P50: h.ValueAtPercentile(50), P90: h.ValueAtPercentile(90), P99: h.ValueAtPercentile(99),
			P999: h.ValueAtPercentile(99.9), P9999: h.ValueAtPercentile(99.99), Max: h.Max(),
		},
	}, nil
}

// HDR returns the decoded histogram.
func (x *Histogram) HDR() (*hdr.Histogram, error) {
	if x.h != nil {
		return x.h, nil
	}
	h, err := hdr.Decode([]byte(x.Encoded))
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	x.h = h
	return h, nil
}

// WriteFile writes r as indented JSON to path atomically: a temporary file in
// the same directory, synced, then renamed over path.
func WriteFile(path string, r *Result) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write result %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes 0600; results are shared artifacts
		f.Close()
		return fmt.Errorf("write result %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write result %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write result %s: %w", path, err)
	}
	return nil
}

// ErrNewerSchema is returned by Read for a result written by a newer sockbench.
var ErrNewerSchema = errors.New("result was written by a newer sockbench")

// Read parses a result file, refusing truncated or corrupted files and newer
// schema versions with a message naming the file.
func Read(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data)
}

// Decode parses result JSON; name is used in error messages.
func Decode(name string, data []byte) (*Result, error) {
	var probe struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a sockbench result (truncated or corrupted JSON): %w", name, err)
	}
	if probe.SchemaVersion == nil {
		return nil, fmt.Errorf("%s: not a sockbench result: no schema_version", name)
	}
	if *probe.SchemaVersion > SchemaVersion {
		return nil, fmt.Errorf("%s: schema version %d: %w (this one reads up to %d); upgrade sockbench", name, *probe.SchemaVersion, ErrNewerSchema, SchemaVersion)
	}
	var r Result
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for k, h := range r.Histograms {
		if h == nil {
			return nil, fmt.Errorf("%s: histogram %q: missing (null)", name, k)
		}
		if _, err := h.HDR(); err != nil {
			return nil, fmt.Errorf("%s: histogram %q: %w", name, k, err)
		}
	}
	if b := r.Broadcast; b != nil {
		// Optional, but one that is there must decode.
		check := func(what string, h *Histogram) error {
			if h == nil {
				return nil
			}
			if _, err := h.HDR(); err != nil {
				return fmt.Errorf("%s: broadcast %s histogram: %w", name, what, err)
			}
			return nil
		}
		if err := check("fanout", b.FanOut); err != nil {
			return nil, err
		}
		for _, rm := range b.PerRoom {
			if err := check(rm.Name+" latency", rm.Latency); err != nil {
				return nil, err
			}
			if err := check(rm.Name+" fanout", rm.FanOut); err != nil {
				return nil, err
			}
		}
	}
	return &r, nil
}
