package metrics_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/result"
)

const ms = int64(1_000_000)

func TestWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start *int64 // nil: SetStart not called
		ns    int64
		want  bool
	}{
		{"unset, zero", nil, 0, false},
		{"unset, negative", nil, -1, false},
		{"unset, late", nil, math.MaxInt64 - 1, false},
		{"start 0, at 0", ptr(0), 0, true},
		{"start 0, before", ptr(0), -1, false},
		{"start 5s, just before", ptr(5e9), 5e9 - 1, false},
		{"start 5s, at", ptr(5e9), 5e9, true},
		{"start 5s, after", ptr(5e9), 5e9 + 1, true},
		{"start 5s, much later", ptr(5e9), 3600e9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := metrics.NewWindow()
			if tc.start != nil {
				w.SetStart(*tc.start)
			}
			if got, want := w.Measured(tc.ns), tc.want; got != want {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func ptr(v int64) *int64 { return &v }

func snapshot(t *testing.T, s *metrics.Set) (result.Counters, map[string]*hdr.Histogram) {
	t.Helper()
	c, hs, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	out := map[string]*hdr.Histogram{}
	for name, x := range hs {
		h, err := x.HDR()
		if err != nil {
			t.Fatalf("histogram %s: %v", name, err)
		}
		if got, want := x.Count, h.TotalCount(); got != want {
			t.Fatalf("histogram %s: summary count %v, histogram %v", name, got, want)
		}
		out[name] = h
	}
	for _, name := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		if out[name] == nil {
			t.Fatalf("Snapshot has no %q histogram", name)
		}
	}
	return c, out
}

func TestRecorderWarmupAndMeasured(t *testing.T) {
	s := metrics.NewSet(2)
	r0, r1 := s.Recorder(0), s.Recorder(1)
	const start = 1000 * ms

	// Warm-up: the window is not open yet.
	r0.Sent(10*ms, 11*ms, 100)
	r1.Sent(20*ms, 20*ms, 100)
	r0.Received(10*ms, 11*ms, 15*ms, 100)

	s.Win.SetStart(start)
	// Sent during warm-up, intended before start, answered after: warm-up.
	r1.Received(20*ms, 20*ms, start+5*ms, 100)
	// Measured.
	r0.Sent(start, start+1*ms, 100)
	r0.Sent(start+10*ms, start+10*ms, 100)
	r1.Sent(start+20*ms, start+22*ms, 100)
	r0.Received(start, start+1*ms, start+3*ms, 100)         // latency 3 ms, service 2 ms
	r1.Received(start+20*ms, start+22*ms, start+27*ms, 100) // latency 7 ms, service 5 ms

	c, h := snapshot(t, s)
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"WarmupSent", c.WarmupSent, 2},
		{"WarmupReceived", c.WarmupReceived, 2},
		{"Sent", c.Sent, 3},
		{"Received", c.Received, 2},
		{"BytesSent", c.BytesSent, 500},
		{"BytesReceived", c.BytesReceived, 400},
		{"send_lag count", h[result.SendLag].TotalCount(), c.Sent},
		{"latency count", h[result.Latency].TotalCount(), c.Received},
		{"service_time count", h[result.ServiceTime].TotalCount(), c.Received},
		{"connect count", h[result.Connect].TotalCount(), 0},
		{"latency max", h[result.Latency].Max(), hiOf(7 * ms)},
		{"latency min", h[result.Latency].Min(), loOf(3 * ms)},
		{"service max", h[result.ServiceTime].Max(), hiOf(5 * ms)},
		{"send lag max", h[result.SendLag].Max(), hiOf(2 * ms)},
		{"send lag min", h[result.SendLag].Min(), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// fields is every counter by name, errors by "errors <class>".
func fields(c *result.Counters) map[string]int64 {
	m := map[string]int64{
		"ConnsOpened": c.ConnsOpened, "ConnsFailed": c.ConnsFailed, "ConnsDropped": c.ConnsDropped, "ConnsClosed": c.ConnsClosed,
		"Sent": c.Sent, "Received": c.Received, "Lost": c.Lost, "InFlight": c.InFlight,
		"Duplicates": c.Duplicates, "Reordered": c.Reordered, "Late": c.Late, "Unexpected": c.Unexpected,
		"WarmupSent": c.WarmupSent, "WarmupReceived": c.WarmupReceived, "WarmupLost": c.WarmupLost, "WarmupInFlight": c.WarmupInFlight,
		"WarmupDuplicates": c.WarmupDuplicates, "WarmupReordered": c.WarmupReordered, "WarmupLate": c.WarmupLate, "WarmupUnexpected": c.WarmupUnexpected,
		"BytesSent": c.BytesSent, "BytesReceived": c.BytesReceived,
	}
	for k, v := range c.Errors {
		m["errors "+k] = v
	}
	return m
}

func TestRecorderCounters(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(r *metrics.Recorder)
		want map[string]int64 // every other counter is 0
	}{
		{
			name: "lost measured and not",
			do: func(r *metrics.Recorder) {
				r.Lost(3, false)
				r.Lost(2, true)
				r.Lost(0, true)
				r.Lost(-4, true)
			},
			want: map[string]int64{"Lost": 2, "WarmupLost": 3},
		},
		{
			name: "in flight measured and not",
			do: func(r *metrics.Recorder) {
				r.InFlight(4, true)
				r.InFlight(1, true)
				r.InFlight(2, false)
				r.InFlight(-1, true)
			},
			want: map[string]int64{"InFlight": 5, "WarmupInFlight": 2},
		},
		{
			name: "anomalies measured",
			do: func(r *metrics.Recorder) {
				for k, n := range map[metrics.Anomaly]int{metrics.Duplicate: 1, metrics.Reordered: 2, metrics.Late: 3, metrics.Unexpected: 4, metrics.Anomaly(99): 5} {
					for range n {
						r.Anomaly(k, true)
					}
				}
			},
			want: map[string]int64{"Duplicates": 1, "Reordered": 2, "Late": 3, "Unexpected": 4},
		},
		{
			name: "anomalies in the warm-up",
			do: func(r *metrics.Recorder) {
				for k, n := range map[metrics.Anomaly]int{metrics.Duplicate: 4, metrics.Reordered: 3, metrics.Late: 2, metrics.Unexpected: 1, metrics.Anomaly(99): 5} {
					for range n {
						r.Anomaly(k, false)
					}
				}
			},
			want: map[string]int64{"WarmupDuplicates": 4, "WarmupReordered": 3, "WarmupLate": 2, "WarmupUnexpected": 1},
		},
		{
			name: "connections and errors",
			do: func(r *metrics.Recorder) {
				r.Connected(2 * ms)
				r.Opened()
				r.ConnFailed(metrics.ErrRefused)
				r.ConnFailed(metrics.ErrRefused)
				r.ConnFailed(metrics.ErrTimeout)
				r.ConnDropped(metrics.ErrReset)
				r.ConnClosed()
				r.ConnClosed()
				r.Error(metrics.ErrProtocol)
				r.Bytes(17)
			},
			want: map[string]int64{
				"ConnsOpened": 2, "ConnsFailed": 3, "ConnsDropped": 1, "ConnsClosed": 2, "BytesReceived": 17,
				"errors refused": 2, "errors timeout": 1, "errors reset": 1, "errors protocol": 1,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := metrics.NewSet(1)
			tc.do(s.Recorder(0))
			c, _ := snapshot(t, s)
			got := fields(&c)
			for k := range got {
				if _, ok := tc.want[k]; !ok {
					tc.want[k] = 0
				}
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s: got %v, want %v", k, g, w)
				}
			}
		})
	}
}

func TestConnectedHistogram(t *testing.T) {
	s := metrics.NewSet(1)
	r := s.Recorder(0)
	r.Connected(2 * ms)
	r.Connected(4 * ms)
	r.Opened() // not a connect sample
	c, h := snapshot(t, s)
	if got, want := c.ConnsOpened, int64(3); got != want {
		t.Fatalf("ConnsOpened: got %v, want %v", got, want)
	}
	if got, want := h[result.Connect].TotalCount(), int64(2); got != want {
		t.Fatalf("connect samples: got %v, want %v", got, want)
	}
	if got, want := h[result.Connect].Max(), hiOf(4*ms); got != want {
		t.Fatalf("connect max: got %v, want %v", got, want)
	}
}

func TestSnapshotErrorNames(t *testing.T) {
	for _, tc := range []struct {
		class metrics.ErrorClass
		name  string
	}{
		{metrics.ErrRefused, "refused"},
		{metrics.ErrTimeout, "timeout"},
		{metrics.ErrReset, "reset"},
		{metrics.ErrClosedByPeer, "closed_by_peer"},
		{metrics.ErrHandshake, "handshake"},
		{metrics.ErrTLS, "tls"},
		{metrics.ErrProtocol, "protocol"},
		{metrics.ErrUnreachable, "unreachable"},
		{metrics.ErrOther, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := tc.class.String(), tc.name; got != want {
				t.Fatalf("String: got %v, want %v", got, want)
			}
			s := metrics.NewSet(3)
			s.Recorder(0).Error(tc.class)
			s.Recorder(1).ConnFailed(tc.class)
			s.Recorder(2).ConnDropped(tc.class)
			c, _ := snapshot(t, s)
			if got, want := fmt.Sprint(c.Errors), fmt.Sprintf("map[%s:3]", tc.name); got != want {
				t.Fatalf("Errors: got %v, want %v", got, want)
			}
		})
	}
	if got, want := metrics.NumErrorClasses.String(), "unknown"; got != want {
		t.Fatalf("NumErrorClasses.String: got %v, want %v", got, want)
	}
	s := metrics.NewSet(1)
	c, _ := snapshot(t, s)
	if c.Errors == nil || len(c.Errors) != 0 {
		t.Fatalf("no errors: got %#v, want an empty non-nil map", c.Errors)
	}
}

func TestRecorderClamp(t *testing.T) {
	const over = result.HighestNs + 5e9
	for _, tc := range []struct {
		name string
		do   func(r *metrics.Recorder)
		hist string
		want int64 // the single value recorded
	}{
		{"latency above 60s", func(r *metrics.Recorder) { r.Received(0, 0, over, 1) }, result.Latency, result.HighestNs},
		{"latency far above 60s", func(r *metrics.Recorder) { r.Received(0, 0, math.MaxInt64, 1) }, result.Latency, result.HighestNs},
		{"latency negative", func(r *metrics.Recorder) { r.Received(100, 100, 50, 1) }, result.Latency, 0},
		{"service above 60s", func(r *metrics.Recorder) { r.Received(0, 0, over, 1) }, result.ServiceTime, result.HighestNs},
		{"service negative", func(r *metrics.Recorder) { r.Received(0, 100, 50, 1) }, result.ServiceTime, 0},
		{"send lag above 60s", func(r *metrics.Recorder) { r.Sent(0, over, 1) }, result.SendLag, result.HighestNs},
		{"send lag negative", func(r *metrics.Recorder) { r.Sent(100, 0, 1) }, result.SendLag, 0},
		{"connect above 60s", func(r *metrics.Recorder) { r.Connected(over) }, result.Connect, result.HighestNs},
		{"connect negative", func(r *metrics.Recorder) { r.Connected(-1) }, result.Connect, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := metrics.NewSet(1)
			s.Win.SetStart(0)
			tc.do(s.Recorder(0))
			_, hs := snapshot(t, s)
			h := hs[tc.hist]
			if got, want := h.TotalCount(), int64(1); got != want {
				t.Fatalf("count: got %v, want %v", got, want)
			}
			if got, want := h.Max(), hiOf(tc.want); got != want {
				t.Fatalf("max: got %v, want %v", got, want)
			}
			if got, want := h.Min(), loOf(tc.want); got != want {
				t.Fatalf("min: got %v, want %v", got, want)
			}
		})
	}
}

func TestSetRecorderModulo(t *testing.T) {
	s := metrics.NewSet(4)
	if got, want := s.Len(), 4; got != want {
		t.Fatalf("Len: got %v, want %v", got, want)
	}
	for _, tc := range []struct{ i, same int }{{0, 4}, {1, 5}, {3, 1003}} {
		if s.Recorder(tc.i) != s.Recorder(tc.same) {
			t.Fatalf("Recorder(%d) != Recorder(%d)", tc.i, tc.same)
		}
	}
	if s.Recorder(0) == s.Recorder(1) {
		t.Fatalf("Recorder(0) == Recorder(1)")
	}
	s.AddOpen(3)
	s.AddOpen(-1)
	if got, want := s.Open(), int64(2); got != want {
		t.Fatalf("Open: got %v, want %v", got, want)
	}
}

func TestInterval(t *testing.T) {
	s := metrics.NewSet(2)
	r0, r1 := s.Recorder(0), s.Recorder(1)
	// Warm-up traffic is part of the interval series.
	r0.Sent(0, 1*ms, 10)
	r0.Received(0, 1*ms, 2*ms, 10) // latency 2 ms
	s.Win.SetStart(10 * ms)
	r1.Sent(10*ms, 13*ms, 10) // send lag 3 ms
	r1.Sent(11*ms, 11*ms, 10)
	r1.Received(10*ms, 13*ms, 19*ms, 10) // latency 9 ms
	r0.Lost(2, true)
	r1.Lost(1, false)
	r0.Error(metrics.ErrProtocol)
	r1.ConnFailed(metrics.ErrRefused)
	r1.ConnDropped(metrics.ErrReset)

	t1 := s.Interval()
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"Sent", t1.Sent, 3},
		{"Received", t1.Received, 2},
		{"Lost", t1.Lost, 3},
		{"Errors", t1.Errors, 3},
		{"latency count", t1.Latency.TotalCount(), 2},
		{"latency max", t1.Latency.Max(), hiOf(9 * ms)},
		{"latency min", t1.Latency.Min(), loOf(2 * ms)},
		{"send lag count", t1.SendLag.TotalCount(), 3},
		{"send lag max", t1.SendLag.Max(), hiOf(3 * ms)},
	} {
		if tc.got != tc.want {
			t.Errorf("first interval %s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	t2 := s.Interval()
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"Sent", t2.Sent, 0},
		{"Received", t2.Received, 0},
		{"Lost", t2.Lost, 0},
		{"Errors", t2.Errors, 0},
		{"latency count", t2.Latency.TotalCount(), 0},
		{"send lag count", t2.SendLag.TotalCount(), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("second interval %s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	// Data after a roll-up lands in the next one only.
	r0.Sent(20*ms, 20*ms, 10)
	r0.Received(20*ms, 20*ms, 25*ms, 10)
	t3 := s.Interval()
	if got, want := t3.Sent, int64(1); got != want {
		t.Errorf("third interval Sent: got %v, want %v", got, want)
	}
	if got, want := t3.Latency.TotalCount(), int64(1); got != want {
		t.Errorf("third interval latency count: got %v, want %v", got, want)
	}
	if got, want := s.Interval().Latency.TotalCount(), int64(0); got != want {
		t.Errorf("fourth interval latency count: got %v, want %v", got, want)
	}

	// Interval roll-ups leave the run's totals alone.
	c, h := snapshot(t, s)
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"Sent", c.Sent, 3},
		{"WarmupSent", c.WarmupSent, 1},
		{"Received", c.Received, 2},
		{"WarmupReceived", c.WarmupReceived, 1},
		{"Lost", c.Lost, 2},
		{"latency count", h[result.Latency].TotalCount(), 2},
		{"errors", c.ErrorsTotal(), 3},
	} {
		if tc.got != tc.want {
			t.Errorf("snapshot %s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestSetConcurrent writes from several goroutines while the collector rolls
// up intervals and snapshots; nothing is lost or counted twice.
func TestSetConcurrent(t *testing.T) {
	const writers, each = 4, 2000
	s := metrics.NewSet(writers)
	s.Win.SetStart(0)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.Recorder(w)
			for i := range each {
				ns := int64(i) * 1000
				r.Sent(ns, ns+10, 8)
				r.Received(ns, ns+10, ns+500, 8)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var sent, recv, samples int64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		tk := s.Interval()
		sent += tk.Sent
		recv += tk.Received
		samples += tk.Latency.TotalCount()
		if _, _, err := s.Snapshot(); err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
	}
	tk := s.Interval()
	sent, recv, samples = sent+tk.Sent, recv+tk.Received, samples+tk.Latency.TotalCount()
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"interval sent", sent, writers * each},
		{"interval received", recv, writers * each},
		{"interval latency samples", samples, writers * each},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	c, h := snapshot(t, s)
	if got, want := c.Sent, int64(writers*each); got != want {
		t.Errorf("Sent: got %v, want %v", got, want)
	}
	if got, want := h[result.Latency].TotalCount(), int64(writers*each); got != want {
		t.Errorf("latency samples: got %v, want %v", got, want)
	}
}

func TestRecorderAllocs(t *testing.T) {
	s := metrics.NewSet(1)
	r := s.Recorder(0)
	s.Win.SetStart(1000)
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Sent warm-up", func() { r.Sent(10, 20, 100) }},
		{"Sent measured", func() { r.Sent(2000, 2500, 100) }},
		{"Received warm-up", func() { r.Received(10, 20, 900, 100) }},
		{"Received measured", func() { r.Received(2000, 2500, 9000, 100) }},
		{"Received clamped", func() { r.Received(2000, 2500, math.MaxInt64, 100) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := testing.AllocsPerRun(1000, tc.fn), 0.0; got != want {
				t.Fatalf("allocs: got %v, want %v", got, want)
			}
		})
	}
}

// timeoutError is a net.Error that timed out, as a deadline or a resolver
// gives.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// plainNetError is a net.Error that did not time out.
type plainNetError struct{}

func (plainNetError) Error() string   { return "something" }
func (plainNetError) Timeout() bool   { return false }
func (plainNetError) Temporary() bool { return false }

func opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Err: err}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want metrics.ErrorClass
	}{
		{"refused", opErr("dial", os.NewSyscallError("connect", syscall.ECONNREFUSED)), metrics.ErrRefused},
		{"refused bare", syscall.ECONNREFUSED, metrics.ErrRefused},
		{"refused udp read", opErr("read", os.NewSyscallError("read", syscall.ECONNREFUSED)), metrics.ErrRefused},
		{"reset", opErr("read", os.NewSyscallError("read", syscall.ECONNRESET)), metrics.ErrReset},
		{"broken pipe", opErr("write", os.NewSyscallError("write", syscall.EPIPE)), metrics.ErrReset},
		{"aborted", opErr("read", syscall.ECONNABORTED), metrics.ErrReset},
		{"eof", io.EOF, metrics.ErrClosedByPeer},
		{"wrapped eof", fmt.Errorf("read frame: %w", io.EOF), metrics.ErrClosedByPeer},
		{"unexpected eof", io.ErrUnexpectedEOF, metrics.ErrClosedByPeer},
		{"net closed", opErr("read", net.ErrClosed), metrics.ErrClosedByPeer},
		{"deadline", os.ErrDeadlineExceeded, metrics.ErrTimeout},
		{"deadline in op error", opErr("read", os.ErrDeadlineExceeded), metrics.ErrTimeout},
		{"context deadline", context.DeadlineExceeded, metrics.ErrTimeout},
		{"wrapped context deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), metrics.ErrTimeout},
		{"net.Error timeout", timeoutError{}, metrics.ErrTimeout},
		{"net.Error timeout in op error", opErr("dial", timeoutError{}), metrics.ErrTimeout},
		{"etimedout", opErr("dial", os.NewSyscallError("connect", syscall.ETIMEDOUT)), metrics.ErrTimeout},
		{"net.Error no timeout", plainNetError{}, metrics.ErrOther},
		{"protocol", &metrics.ProtocolError{Err: errors.New("bad frame")}, metrics.ErrProtocol},
		{"protocol wrapped", fmt.Errorf("conn 3: %w", &metrics.ProtocolError{Err: io.EOF}), metrics.ErrProtocol},
		{"handshake", &metrics.HandshakeError{Err: errors.New("unexpected HTTP response status: 403")}, metrics.ErrHandshake},
		{"handshake eof", &metrics.HandshakeError{Err: io.EOF}, metrics.ErrHandshake},
		{"handshake deadline", &metrics.HandshakeError{Err: os.ErrDeadlineExceeded}, metrics.ErrTimeout},
		{"handshake net timeout", &metrics.HandshakeError{Err: opErr("read", timeoutError{})}, metrics.ErrTimeout},
		{"handshake context deadline", &metrics.HandshakeError{Err: context.DeadlineExceeded}, metrics.ErrTimeout},
		{"tls record header", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, metrics.ErrTLS},
		{"tls record header in handshake", &metrics.HandshakeError{Err: tls.RecordHeaderError{Msg: "x"}}, metrics.ErrTLS},
		{"tls alert", fmt.Errorf("remote error: %w", tls.AlertError(42)), metrics.ErrTLS},
		{"tls certificate", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}, metrics.ErrTLS},
		{"net unreachable", opErr("dial", os.NewSyscallError("connect", syscall.ENETUNREACH)), metrics.ErrUnreachable},
		{"host unreachable", opErr("dial", syscall.EHOSTUNREACH), metrics.ErrUnreachable},
		{"addr not available", opErr("dial", syscall.EADDRNOTAVAIL), metrics.ErrUnreachable},
		{"unknown", errors.New("weird"), metrics.ErrOther},
		{"canceled", context.Canceled, metrics.ErrOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := metrics.Classify(tc.err), tc.want; got != want {
				t.Fatalf("Classify(%v): got %v, want %v", tc.err, got, want)
			}
		})
	}
}

func TestErrorWrappers(t *testing.T) {
	inner := errors.New("inner")
	for _, tc := range []struct {
		name string
		err  error
		msg  string
	}{
		{"protocol", &metrics.ProtocolError{Err: inner}, "protocol error: inner"},
		{"handshake", &metrics.HandshakeError{Err: inner}, "handshake failed: inner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := tc.err.Error(), tc.msg; got != want {
				t.Fatalf("Error: got %q, want %q", got, want)
			}
			if got, want := errors.Is(tc.err, inner), true; got != want {
				t.Fatalf("errors.Is inner: got %v, want %v", got, want)
			}
		})
	}
}

// hiOf and loOf are what Max and Min report for a histogram holding only v.
func hiOf(v int64) int64 {
	h := result.NewHistogram()
	_ = h.RecordValue(v)
	return h.Max()
}

func loOf(v int64) int64 {
	h := result.NewHistogram()
	_ = h.RecordValue(v)
	return h.Min()
}

// SentBatch counts as many Sent calls at one instant would, and a held
// recorder counts without its lock.
func TestRecorderSentBatchAndHold(t *testing.T) {
	t.Parallel()
	batch, single := metrics.NewSet(1), metrics.NewSet(1)
	const start = 1000 * ms
	batch.Win.SetStart(start)
	single.Win.SetStart(start)
	rb, rs := batch.Recorder(0), single.Recorder(0)
	rb.Hold()
	rb.SentBatch(start-ms, 3, 300) // warm-up
	rb.SentBatch(start+ms, 5, 500)
	rb.SentBatch(start+2*ms, 0, 0) // nothing
	rb.Release()
	for range 3 {
		rs.Sent(start-ms, start-ms, 100)
	}
	for range 5 {
		rs.Sent(start+ms, start+ms, 100)
	}
	cb, hb := snapshot(t, batch)
	cs, hs := snapshot(t, single)
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"Sent", cb.Sent, cs.Sent},
		{"WarmupSent", cb.WarmupSent, cs.WarmupSent},
		{"BytesSent", cb.BytesSent, cs.BytesSent},
		{"send_lag count", hb[result.SendLag].TotalCount(), hs[result.SendLag].TotalCount()},
		{"send_lag max", hb[result.SendLag].Max(), hs[result.SendLag].Max()},
		{"interval sent", batch.Interval().Sent, 8},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// Reject keeps the first result.MaxRejected messages, each cut to
// result.RejectedBytes, in arrival order, and copies them: the caller's
// buffer is reused.
func TestSetReject(t *testing.T) {
	t.Parallel()
	s := metrics.NewSet(1)
	buf := make([]byte, 300)
	for i := range 8 {
		for j := range buf {
			buf[j] = byte(i)
		}
		if got, want := s.Rejecting(), i < result.MaxRejected; got != want {
			t.Fatalf("message %d: Rejecting %v, want %v", i, got, want)
		}
		s.Reject(result.RejectUnparsed, uint32(i), int64(100-i), buf[:100+10*i], "why")
	}
	got := s.Rejected()
	if len(got) != result.MaxRejected {
		t.Fatalf("%d kept, want %d", len(got), result.MaxRejected)
	}
	for i, x := range got {
		n := result.MaxRejected - 1 - i // kept in order of arrival time: the last one first here
		if x.Conn != uint32(n) || x.AtNs != int64(100-n) || x.Length != 100+10*n || len(x.Bytes) != min(100+10*n, result.RejectedBytes) || x.Bytes[0] != byte(n) {
			t.Errorf("kept %d: conn %d at %d, length %d, %d bytes of %d", i, x.Conn, x.AtNs, x.Length, len(x.Bytes), x.Bytes[0])
		}
	}
}

// Reject and Rejecting cost nothing once the first few are kept.
func TestSetRejectAllocs(t *testing.T) {
	s := metrics.NewSet(1)
	msg := []byte("garbage")
	for range result.MaxRejected {
		s.Reject(result.RejectUnparsed, 1, 1, msg, "why")
	}
	if n := testing.AllocsPerRun(1000, func() {
		if s.Rejecting() {
			s.Reject(result.RejectUnparsed, 1, 1, msg, "why")
		}
	}); n != 0 {
		t.Errorf("%v allocations per rejected message past the first %d, want 0", n, result.MaxRejected)
	}
}
