package result_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sockbench/sockbench/internal/result"
)

// histOf returns a Result-geometry histogram holding values.
func histOf(t *testing.T, values ...int64) *hdr.Histogram {
	t.Helper()
	h := result.NewHistogram()
	for _, v := range values {
		if err := h.RecordValue(v); err != nil {
			t.Fatalf("RecordValue(%d): %v", v, err)
		}
	}
	return h
}

func spread(n int, step int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i+1) * step
	}
	return out
}

var histCases = []struct {
	name   string
	values []int64
}{
	{"empty", nil},
	{"one", []int64{1234}},
	{"zero", []int64{0}},
	{"limits", []int64{result.LowestNs, result.HighestNs}},
	{"1..10000 us", spread(10000, 1000)},
	{"tail", append(spread(990, 1_000_000), spread(10, 5_000_000_000)...)},
}

func TestFromHDRSummary(t *testing.T) {
	for _, tc := range histCases {
		t.Run(tc.name, func(t *testing.T) {
			h := histOf(t, tc.values...)
			x, err := result.FromHDR(h)
			if err != nil {
				t.Fatalf("FromHDR: %v", err)
			}
			for _, c := range []struct {
				name      string
				got, want int64
			}{
				{"count", x.Count, int64(len(tc.values))},
				{"min", x.Min, h.Min()},
				{"p50", x.P50, h.ValueAtPercentile(50)},
				{"p90", x.P90, h.ValueAtPercentile(90)},
				{"p99", x.P99, h.ValueAtPercentile(99)},
				{"p99.9", x.P999, h.ValueAtPercentile(99.9)},
				{"p99.99", x.P9999, h.ValueAtPercentile(99.99)},
				{"max", x.Max, h.Max()},
			} {
				if c.got != c.want {
					t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
				}
			}
			if got, want := x.Mean, h.Mean(); got != want {
				t.Errorf("mean: got %v, want %v", got, want)
			}
			if got, want := x.StdDev, h.StdDev(); got != want {
				t.Errorf("stddev: got %v, want %v", got, want)
			}
			if got, want := x.Unit, "ns"; got != want {
				t.Errorf("unit: got %v, want %v", got, want)
			}
			if len(tc.values) > 0 {
				if got, want := x.Max, h.Max(); !h.ValuesAreEquivalent(got, tc.values[len(tc.values)-1]) {
					t.Errorf("max %v not equivalent to the largest value %v (histogram max %v)", got, tc.values[len(tc.values)-1], want)
				}
			}
		})
	}
}

func TestHistogramJSONRoundTrip(t *testing.T) {
	for _, tc := range histCases {
		t.Run(tc.name, func(t *testing.T) {
			h := histOf(t, tc.values...)
			x, err := result.FromHDR(h)
			if err != nil {
				t.Fatalf("FromHDR: %v", err)
			}
			data, err := json.Marshal(x)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var back result.Histogram
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			got, err := back.HDR()
			if err != nil {
				t.Fatalf("HDR: %v", err)
			}
			if !got.Equals(h) {
				t.Fatalf("decoded histogram differs: count %d max %d, want count %d max %d", got.TotalCount(), got.Max(), h.TotalCount(), h.Max())
			}
			if again, _ := back.HDR(); again != got {
				t.Fatalf("HDR decoded twice")
			}
			if got, want := back.Count, x.Count; got != want {
				t.Fatalf("count: got %v, want %v", got, want)
			}
		})
	}
}

func sampleResult(t *testing.T, name string) *result.Result {
	t.Helper()
	hs := map[string]*result.Histogram{}
	for i, k := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		x, err := result.FromHDR(histOf(t, spread(100*(i+1), 10_000)...))
		if err != nil {
			t.Fatalf("FromHDR: %v", err)
		}
		hs[k] = x
	}
	return &result.Result{
		SchemaVersion: result.SchemaVersion,
		Scenario:      json.RawMessage(`{"name":"` + name + `"}`),
		Plan:          result.PlanInfo{Name: name, Target: "ws://127.0.0.1:1/", Transport: "ws", Mode: "open", Engine: "goroutine"},
		StartedAt:     time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Window:        result.Window{StartNs: 1e9, EndNs: 11e9},
		Counters:      result.Counters{Sent: 1000, Received: 990, Lost: 10, Errors: map[string]int64{"timeout": 2}},
		Histograms:    hs,
		Intervals:     []result.Interval{{TNs: 1e9, Phase: "steady", Sent: 100}},
	}
}

// dirNames lists dir, to check that no temporary file is left behind.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		rel  string // result path under the test's temp dir
	}{
		{"in dir", "run.json"},
		{"creates dirs", "a/b/c/run.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.rel)
			want := sampleResult(t, "first")
			if err := result.WriteFile(path, want); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(data) {
				t.Fatalf("not valid JSON: %.200s", data)
			}
			if got, want := data[len(data)-1], byte('\n'); got != want {
				t.Fatalf("last byte: got %q, want %q", got, want)
			}
			if got, want := strings.Join(dirNames(t, filepath.Dir(path)), ","), "run.json"; got != want {
				t.Fatalf("dir holds: got %v, want %v", got, want)
			}
			got, err := result.Read(path)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got, want := got.Plan, want.Plan; got != want {
				t.Fatalf("plan: got %+v, want %+v", got, want)
			}
			if got, want := got.Counters.Lost, want.Counters.Lost; got != want {
				t.Fatalf("lost: got %v, want %v", got, want)
			}
			if got, want := got.StartedAt, want.StartedAt; !got.Equal(want) {
				t.Fatalf("started at: got %v, want %v", got, want)
			}
			for k, x := range want.Histograms {
				h, err := got.Histograms[k].HDR()
				if err != nil {
					t.Fatalf("histogram %s: %v", k, err)
				}
				wh, _ := x.HDR()
				if !h.Equals(wh) {
					t.Fatalf("histogram %s differs after WriteFile/Read", k)
				}
			}
		})
	}
}

func TestWriteFileOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.json")
	for _, name := range []string{"first", "second", "third"} {
		if err := result.WriteFile(path, sampleResult(t, name)); err != nil {
			t.Fatalf("WriteFile %s: %v", name, err)
		}
		r, err := result.Read(path)
		if err != nil {
			t.Fatalf("Read after %s: %v", name, err)
		}
		if got, want := r.Plan.Name, name; got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
		if got, want := strings.Join(dirNames(t, dir), ","), "run.json"; got != want {
			t.Fatalf("dir holds: got %v, want %v", got, want)
		}
	}
}

// TestWriteFileErrors covers paths that cannot be written: the error names
// what could not be created and no temporary file is left.
func TestWriteFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (path string)
	}{
		{
			name: "parent is a file",
			setup: func(t *testing.T, dir string) string {
				if err := os.WriteFile(filepath.Join(dir, "blocker"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(dir, "blocker", "sub", "run.json")
			},
		},
		{
			name: "path is a directory",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "run.json")
				if err := os.MkdirAll(filepath.Join(p, "x"), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(t, dir)
			before := strings.Join(dirNames(t, dir), ",")
			err := result.WriteFile(path, sampleResult(t, "x"))
			if err == nil {
				t.Fatalf("WriteFile(%s): got nil error", path)
			}
			if got, want := strings.Join(dirNames(t, dir), ","), before; got != want {
				t.Errorf("dir after failure: got %v, want %v", got, want)
			}
			if !strings.Contains(err.Error(), filepath.Dir(filepath.Dir(path))) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

// TestWriteFileMkdirErrorNamesResultPath: BUG. When the result's directory
// cannot be created, WriteFile wraps the error as "write result: %w" without
// the result path (the later steps say "write result <path>: ..."), so the
// user sees only the component that was in the way.
func TestWriteFileMkdirErrorNamesResultPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blocker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "blocker", "sub", "run.json")
	err := result.WriteFile(path, sampleResult(t, "x"))
	if err == nil {
		t.Fatalf("WriteFile(%s): got nil error", path)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name %s", err, path)
	}
}

func TestReadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.json")
	_, err := result.Read(path)
	if got, want := errors.Is(err, os.ErrNotExist), true; got != want {
		t.Fatalf("errors.Is ErrNotExist: got %v (%v), want %v", got, err, want)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name %s", err, path)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := json.Marshal(sampleResult(t, "ok"))
	if err != nil {
		t.Fatal(err)
	}
	withHist := func(enc string) []byte {
		r := sampleResult(t, "ok")
		r.Histograms[result.Latency].Encoded = enc
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const name = "results/run-42.json"
	for _, tc := range []struct {
		name     string
		in       []byte
		contains []string
		is       error
	}{
		{"truncated", good[:len(good)/2], []string{"truncated"}, nil},
		{"truncated at the end", good[:len(good)-1], []string{"truncated"}, nil},
		{"empty", nil, nil, nil},
		{"not JSON", []byte("latency p99 12ms\n"), []string{"not a sockbench result"}, nil},
		{"JSON array", []byte(`[1,2,3]`), []string{"not a sockbench result"}, nil},
		{"missing schema_version", []byte(`{"plan":{"name":"x"}}`), []string{"schema_version"}, nil},
		{"null schema_version", []byte(`{"schema_version":null}`), []string{"schema_version"}, nil},
		{"string schema_version", []byte(`{"schema_version":"1"}`), nil, nil},
		{"newer schema", []byte(fmt.Sprintf(`{"schema_version":%d,"future":true}`, result.SchemaVersion+1)), []string{"upgrade", fmt.Sprint(result.SchemaVersion + 1)}, result.ErrNewerSchema},
		{"much newer schema", []byte(`{"schema_version":1000}`), []string{"upgrade"}, result.ErrNewerSchema},
		{"wrong field type", []byte(`{"schema_version":1,"counters":"many"}`), nil, nil},
		{"histogram not base64", withHist("!!!! not base64 !!!!"), []string{result.Latency}, nil},
		{"histogram base64 of garbage", withHist(base64.StdEncoding.EncodeToString([]byte("garbage that is not hdr"))), []string{result.Latency}, nil},
		{"histogram empty", withHist(""), []string{result.Latency}, nil},
		{"histogram truncated", withHist(sampleResult(t, "x").Histograms[result.Latency].Encoded[:20]), []string{result.Latency}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := result.Decode(name, tc.in)
			if err == nil {
				t.Fatalf("got result %+v, want an error", r.Plan)
			}
			if r != nil {
				t.Errorf("got a result with the error %v", err)
			}
			for _, s := range append([]string{name}, tc.contains...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tc.is != nil {
				if got, want := errors.Is(err, tc.is), true; got != want {
					t.Errorf("errors.Is(%v, %v): got %v, want %v", err, tc.is, got, want)
				}
			}
		})
	}
}

// TestDecodeNullHistogram: BUG. A histogram that is JSON null decodes to a
// nil *Histogram, and Decode calls HDR on it, which dereferences nil.
func TestDecodeNullHistogram(t *testing.T) {
	in := []byte(`{"schema_version":1,"histograms":{"latency":null}}`)
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Decode panicked: %v", p)
			}
		}()
		_, err = result.Decode("run.json", in)
	}()
	if err == nil {
		t.Fatalf("got nil error, want one naming the latency histogram")
	}
	if !strings.Contains(err.Error(), "run.json") {
		t.Fatalf("error %q does not name the file", err)
	}
}

func TestDecodeAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"minimal", `{"schema_version":1}`},
		{"older", `{"schema_version":0}`},
		{"unknown fields", `{"schema_version":1,"added_later":{"x":1}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := result.Decode("x.json", []byte(tc.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if r == nil {
				t.Fatalf("got nil result")
			}
		})
	}
}

func TestErrorsTotalAndSeconds(t *testing.T) {
	c := result.Counters{Errors: map[string]int64{"refused": 2, "timeout": 3}}
	if got, want := c.ErrorsTotal(), int64(5); got != want {
		t.Fatalf("ErrorsTotal: got %v, want %v", got, want)
	}
	w := result.Window{StartNs: 2e9, EndNs: 12.5e9}
	if got, want := w.Seconds(), 10.5; got != want {
		t.Fatalf("Seconds: got %v, want %v", got, want)
	}
}

// Merging repetitions of a broadcast run adds up their delivery accounting,
// room by room: a threshold on the merged result sees every repetition.
func TestMergeBroadcast(t *testing.T) {
	run := func(delivered int64) *result.Result {
		h := result.NewHistogram()
		_ = h.RecordValue(1000)
		x, err := result.FromHDR(h)
		if err != nil {
			t.Fatal(err)
		}
		return &result.Result{
			Histograms: map[string]*result.Histogram{result.Latency: x},
			Broadcast: &result.Broadcast{Publishes: 10, FannedOut: 10, Expected: 100, Delivered: delivered, Missing: 100 - delivered,
				FanOut: x, PerRoom: []result.RoomResult{{Name: "room-0", Rooms: 1, Members: 10, Publishes: 10, Expected: 100,
					Delivered: delivered, Missing: 100 - delivered, Latency: x, FanOut: x}}},
		}
	}
	m, err := result.Merge([]*result.Result{run(100), run(50), run(50)})
	if err != nil {
		t.Fatal(err)
	}
	b := m.Broadcast
	if b.Expected != 300 || b.Delivered != 200 || b.Missing != 100 || b.Publishes != 30 {
		t.Errorf("merged %+v: want expected 300, delivered 200, missing 100, publishes 30", *b)
	}
	if len(b.PerRoom) != 1 || b.PerRoom[0].Delivered != 200 || b.PerRoom[0].Latency.Count != 3 || b.FanOut.Count != 3 {
		t.Errorf("merged rooms %+v, fan-out samples %d", b.PerRoom, b.FanOut.Count)
	}
}
