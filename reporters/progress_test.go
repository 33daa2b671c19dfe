package reporters

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/result"
)

func TestParseProgressMode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    ProgressMode
		wantErr bool
	}{
		{"auto", ProgressAuto, false},
		{"tty", ProgressTTY, false},
		{"plain", ProgressPlain, false},
		{"off", ProgressOff, false},
		{"", "", true},
		{"TTY", "", true},
		{"quiet", "", true},
	}
	for _, tc := range cases {
		got, err := ParseProgressMode(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseProgressMode(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestProgressPrinter drives each mode with three intervals and Done into a
// fake writer, recording every write on its own.
func TestProgressPrinter(t *testing.T) {
	t.Parallel()
	ivs := []result.Interval{
		{TNs: 1e9, Phase: "warmup", OpenConns: 10, Sent: 90, Received: 90, SendRate: 90, PlannedRate: 100, RecvRate: 90, P50Ns: 20_000, P99Ns: 90_000, Errors: 0},
		{TNs: 2e9, Phase: "steady", OpenConns: 1000, Sent: 10000, Received: 9999, Lost: 3, SendRate: 10000, PlannedRate: 10000, RecvRate: 9999, P50Ns: 21_000, P99Ns: 1_500_000, Errors: 2},
		{TNs: 3e9, Phase: "drain", OpenConns: 0, Sent: 5, SendRate: 5, RecvRate: 0},
	}
	cases := []struct {
		mode       ProgressMode
		wantWrites int      // writes, Done's included
		wantLines  int      // newlines in all
		want       []string // substrings of the whole output
		notWant    []string
	}{
		{
			mode: ProgressTTY, wantWrites: 4, wantLines: 1,
			want: []string{
				"\r   1.0s/25.0s  warmup   conns 10  send 90/100 msg/s  recv 90 msg/s  p50 20.0us  p99 90.0us  lost 0  errors 0\x1b[K",
				"\r   2.0s/25.0s  steady   conns 1000  send 10000/10000 msg/s  recv 9999 msg/s  p50 21.0us  p99 1.50ms  lost 3  errors 2\x1b[K",
				"recv 0 msg/s  p50 -  p99 -  lost 0", // no sample: "-", as in the summary
				"send 5 msg/s",                       // no plan in the drain: no "/0"
			},
			notWant: []string{"/0 msg/s"},
		},
		{
			mode: ProgressPlain, wantWrites: 3, wantLines: 3,
			want:    []string{"[   1.0s] warmup   conns 10  send 90/100 msg/s", "[   2.0s] steady", "[   3.0s] drain"},
			notWant: []string{"\r", "\x1b"},
		},
		{mode: ProgressOff, wantWrites: 0, wantLines: 0},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			var w writeLog
			p := NewProgress(&w, tc.mode, 25*time.Second)
			for _, iv := range ivs {
				p.Interval(iv)
			}
			p.Done()
			p.Done() // a second Done writes nothing
			out := w.String()
			if got := len(w.writes); got != tc.wantWrites {
				t.Errorf("%d writes, want %d: %q", got, tc.wantWrites, w.writes)
			}
			if got := strings.Count(out, "\n"); got != tc.wantLines {
				t.Errorf("%d newlines, want %d: %q", got, tc.wantLines, out)
			}
			checkContains(t, out, tc.want, tc.notWant)
			if tc.mode == ProgressTTY {
				// Each status is one write that starts at column 0 and
				// clears what a longer previous line left behind.
				for _, s := range w.writes[:len(ivs)] {
					if !strings.HasPrefix(s, "\r") || !strings.HasSuffix(s, clearEOL) || strings.Contains(s, "\n") {
						t.Errorf("status write %q: want \\r...\\x1b[K on one line", s)
					}
				}
				if last := w.writes[len(w.writes)-1]; last != "\n" {
					t.Errorf("Done wrote %q, want a newline", last)
				}
			}
		})
	}
}

// TestProgressPrinterNoTotal: without a planned total the terminal line
// shows the elapsed time alone.
func TestProgressPrinterNoTotal(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	NewProgress(&b, ProgressTTY, 0).Interval(result.Interval{TNs: 1500e6, Phase: "steady"})
	if got, want := b.String(), "\r   1.5s  steady   conns 0"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want prefix %q", got, want)
	}
}

// writeLog is a fake terminal that keeps every write apart.
type writeLog struct{ writes []string }

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writeLog) String() string { return strings.Join(w.writes, "") }
