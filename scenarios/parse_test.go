package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// head is a valid scenario head whose first phase is left open, so that a
// case can add keys at line 5, column 5.
const head = "name: t\nphases:\n  - duration: 10s\n    conns: 10\n"

func TestParseGood(t *testing.T) {
	t.Parallel()
	data := `# a full scenario
name: full
description: "all the keys"
target: ws://localhost:8080/echo
transport: ws
mode: open
insecure: true
warmup: 0s
timeout: 500ms
connect_timeout: 1m30s
phases:
  - name: ramp
    duration: 5s
    conns: 1e3
    connect_rate: 2000
    per_conn_rate: 2.5
    size: 128
  - duration: 10s
    conns: 2000
    rate: 10_000
thresholds:
  - p99 < 50ms
  - "error_rate < 0.1%"
`
	s, err := Parse("full.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Name, "full"; got != want {
		t.Errorf("name: got %q, want %q", got, want)
	}
	if got, want := s.File, "full.yaml"; got != want {
		t.Errorf("file: got %q, want %q", got, want)
	}
	if !s.Insecure || s.Target != "ws://localhost:8080/echo" || s.Transport != "ws" || s.Mode != "open" {
		t.Errorf("scalars: got %+v", s)
	}
	if s.Warmup == nil || *s.Warmup != 0 {
		t.Errorf("warmup: got %v, want 0s", s.Warmup)
	}
	if s.Timeout == nil || time.Duration(*s.Timeout) != 500*time.Millisecond {
		t.Errorf("timeout: got %v, want 500ms", s.Timeout)
	}
	if s.ConnectTimeout == nil || time.Duration(*s.ConnectTimeout) != 90*time.Second {
		t.Errorf("connect_timeout: got %v, want 1m30s", s.ConnectTimeout)
	}
	if got, want := len(s.Phases), 2; got != want {
		t.Fatalf("phases: got %d, want %d", got, want)
	}
	p0, p1 := s.Phases[0], s.Phases[1]
	if p0.Name != "ramp" || p0.Duration != Duration(5*time.Second) || p0.Conns != 1000 ||
		*p0.ConnectRate != 2000 || *p0.PerConnRate != 2.5 || *p0.Size != 128 || p0.Rate != nil || p0.InFlight != nil {
		t.Errorf("phases[0]: got %+v", p0)
	}
	if p1.Name != "" || p1.Conns != 2000 || *p1.Rate != 10000 || p1.PerConnRate != nil || p1.Size != nil {
		t.Errorf("phases[1]: got %+v", p1)
	}
	if got, want := len(s.Thresholds), 2; got != want {
		t.Fatalf("thresholds: got %d, want %d", got, want)
	}
	th := s.Thresholds[1]
	if th.Metric != "error_rate" || th.File != "full.yaml" || th.Line != 23 || th.Col != 5 {
		t.Errorf("thresholds[1]: got %+v", th)
	}
}

func TestParseAliases(t *testing.T) {
	t.Parallel()
	data := "name: t\nphases:\n  - &p\n    duration: 10s\n    conns: 10\n    rate: 100\n  - *p\n"
	s, err := Parse("t.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.Phases), 2; got != want {
		t.Fatalf("phases: got %d, want %d", got, want)
	}
	if got, want := s.Phases[1].Conns, 10; got != want {
		t.Errorf("phases[1].conns: got %d, want %d", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, want string
	}{
		// Keys.
		{"unknown phase key", "name: t\nphases:\n  - duration: 10s\n    conn: 10\n    rate: 100\n",
			`t.yaml:4:5: unknown key "conn" in phase; did you mean "conns"?`},
		{"unknown scenario key", "nmae: t\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:1:1: unknown key "nmae" in scenario; did you mean "name"?`},
		{"dashes for underscores", head + "    per-conn-rate: 5\n",
			`t.yaml:5:5: unknown key "per-conn-rate" in phase; did you mean "per_conn_rate"?`},
		{"camel case", head + "    perConnRate: 5\n",
			`t.yaml:5:5: unknown key "perConnRate" in phase; did you mean "per_conn_rate"?`},
		{"phase key at top level", "name: t\nconns: 5\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:1: unknown key "conns" in scenario; conns is a phase key: move it into a phase under phases:`},
		{"scenario key in phase", head + "    warmup: 1s\n",
			`t.yaml:5:5: unknown key "warmup" in phase; warmup is a scenario key: move it to the top level`},
		{"unknown key, nothing close", "name: t\nfoo: 1\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:1: unknown key "foo" in scenario (known keys: name, description, target, transport, framing, mode, insecure, warmup, timeout, connect_timeout, max_inflight, phases, thresholds, broadcast)`},
		{"duplicate key", head + "    rate: 100\n    rate: 200\n",
			`t.yaml:6:5: duplicate key "rate" in phase; first given at line 5`},
		{"duplicate top key", "name: t\nname: u\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:1: duplicate key "name" in scenario; first given at line 1`},
		{"missing name", "phases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:1:1: missing required key "name"`},
		{"missing phases", "name: t\n",
			`t.yaml:1:1: missing required key "phases"; add at least one phase with duration and conns`},
		{"missing duration", "name: t\nphases:\n  - conns: 10\n",
			`t.yaml:3:5: phases[0]: missing required key "duration" (how long the phase lasts, like duration: 20s)`},
		{"missing conns", "name: t\nphases:\n  - duration: 1s\n",
			`t.yaml:3:5: phases[0]: missing required key "conns" (connections to open, like conns: 100)`},
		{"empty phases", "name: t\nphases: []\n",
			`t.yaml:2:9: phases: at least one phase is required, with duration and conns`},
		{"phases not a list", "name: t\nphases:\n  duration: 10s\n",
			`t.yaml:3:3: phases: want a list of phases, got a mapping`},
		{"phase not a mapping", "name: t\nphases:\n  - steady\n",
			`t.yaml:3:5: phases[0]: want a mapping of phase keys, got "steady"`},

		// Types.
		{"rate not a number", head + "    rate: fast\n",
			`t.yaml:5:11: phases[0].rate: want a number, got "fast"`},
		{"rate quoted", head + "    rate: \"100\"\n",
			`t.yaml:5:11: phases[0].rate: want a number, got "100"`},
		{"rate empty", head + "    rate:\n",
			`t.yaml:5:10: phases[0].rate: want a number, got nothing`},
		{"rate infinite", head + "    rate: .inf\n",
			`t.yaml:5:11: phases[0].rate: want a finite number, got .inf`},
		{"conns fractional", "name: t\nphases:\n  - duration: 10s\n    conns: 2.5\n",
			`t.yaml:4:12: phases[0].conns: want a whole number, got 2.5`},
		{"size a list", head + "    size: [64]\n",
			`t.yaml:5:11: phases[0].size: want a whole number, got a list`},
		{"insecure yes", "name: t\ninsecure: yes\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:11: insecure: want true or false, got "yes"`},
		{"name a number", "name: 123\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:1:7: name: want a string, got 123 (quote it: "123")`},
		{"target a mapping", "name: t\ntarget: {host: x}\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:9: target: want a string, got a mapping`},
		{"duration without unit", "name: t\nphases:\n  - duration: 10\n    conns: 10\n",
			`t.yaml:3:15: phases[0].duration: bad duration "10": want a Go duration like "20s", "500ms" or "1m30s"`},
		{"bad warmup", "name: t\nwarmup: 3 seconds\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:9: warmup: bad duration "3 seconds": want a Go duration like "20s", "500ms" or "1m30s"`},
		{"timeout empty", "name: t\ntimeout:\nphases:\n  - duration: 10s\n    conns: 10\n",
			`t.yaml:2:9: timeout: want a duration like "20s", got nothing`},
		{"root a list", "- name: t\n",
			`t.yaml:1:1: want a scenario mapping with at least name and phases, got a list`},

		// Thresholds.
		{"threshold unit typo", head + "    rate: 100\nthresholds:\n  - \"p99<20mz\"\n",
			`t.yaml:7:5: thresholds[0]: "p99<20mz": unknown unit "mz" (want ns, us, ms, s)`},
		{"threshold metric typo", head + "    rate: 100\nthresholds:\n  - p99 < 1s\n  - latncy.p99 < 20ms\n",
			`t.yaml:8:5: thresholds[1]: "latncy.p99 < 20ms": unknown metric "latncy"; did you mean "latency"? (want latency, service_time, connect, send_lag, error_rate, loss, throughput, rate_ratio, delivery, fanout, room_latency, room_delivery)`},
		{"threshold a number", head + "    rate: 100\nthresholds:\n  - 5\n",
			`t.yaml:7:5: thresholds[0]: want a threshold like "p99 < 50ms", got 5`},
		{"threshold a mapping", head + "    rate: 100\nthresholds:\n  - p99: 50ms\n",
			`t.yaml:7:5: thresholds[0]: want a threshold like "p99 < 50ms", got a mapping`},
		{"thresholds a string", head + "    rate: 100\nthresholds: p99 < 5ms\n",
			`t.yaml:6:13: thresholds: want a list of thresholds like "p99 < 50ms", got "p99 < 5ms"`},

		// YAML syntax.
		{"tab indent", "name: t\nphases:\n\t- duration: 10s\n",
			`t.yaml:3:1: invalid YAML: tab character; indent with spaces, not tabs`},
		{"tab in mapping", "name: t\nphases:\n  - duration: 10s\n\tconns: 10\n",
			`t.yaml:4:1: invalid YAML: tab character; indent with spaces, not tabs`},
		{"bad indent", "name: t\n  bad: 1\n",
			`t.yaml:2:3: invalid YAML: mapping values are not allowed in this context`},
		{"missing colon", "name: t\nphases\n  - duration: 10s\n",
			`t.yaml:2:1: invalid YAML: could not find expected ':'`},
		{"unclosed flow", "name: t\nphases: [\n",
			`t.yaml:2:1: invalid YAML: did not find expected node content`},
		{"bad first line", "name: @t\n",
			`t.yaml:1:1: invalid YAML: found character that cannot start any token`},
		{"unknown anchor", "name: t\nphases:\n  - *nope\n",
			`t.yaml:3:5: invalid YAML: unknown anchor 'nope' referenced`},
		{"two documents", "name: t\nphases:\n  - duration: 10s\n    conns: 1\n    rate: 1\n---\nname: u\n",
			`t.yaml:6:1: a second YAML document; a scenario file holds one scenario`},
		{"empty file", "", `t.yaml:1:1: empty scenario; want a mapping with at least name and phases`},
		{"only comments", "# nothing\n", `t.yaml:1:1: empty scenario; want a mapping with at least name and phases`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse("t.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("got %+v, want error %q", s, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("got %T, want *Error", err)
			}
		})
	}
}

func TestParseSeveralErrors(t *testing.T) {
	t.Parallel()
	data := "name: t\nphases:\n  - duration: 10s\n    conns: many\n    rate: fast\n"
	_, err := Parse("t.yaml", []byte(data))
	want := "t.yaml:4:12: phases[0].conns: want a whole number, got \"many\"\n" +
		"t.yaml:5:11: phases[0].rate: want a number, got \"fast\""
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 4 {
		t.Errorf("errors.As: got %+v, want the first *Error", e)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "echo.yaml")
	if err := os.WriteFile(path, []byte(head+"    rate: -5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Plan(Limits{})
	if got, want := err.Error(), path+":5:11: phases[0].rate: must be > 0 (got -5); set a positive total rate in msg/s"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want *Error", err, err)
	}
	if got, want := err.Error(), missing+": cannot read scenario: no such file or directory"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		word, want string
		ok         bool
	}{
		{"conn", "conns", true},
		{"Rate", "rate", true},
		{"rat", "rate", true},
		{"connect-rate", "connect_rate", true},
		{"ConnectRate", "connect_rate", true},
		{"frobnicate", "", false},
		{"x", "", false},
	}
	for _, tt := range tests {
		got, ok := suggest(tt.word, phaseKeys)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("suggest(%q): got %q, %v, want %q, %v", tt.word, got, ok, tt.want, tt.ok)
		}
	}
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"kitten", "sitting", 3}, {"mena", "mean", 1}, {"", "abc", 3}, {"µs", "us", 1}} {
		if got := editDistance(tt.a, tt.b); got != tt.d {
			t.Errorf("editDistance(%q, %q): got %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
	if !strings.Contains(unknownKey("zzz", "phase", nil, nil), `"zzz"`) {
		t.Error("unknownKey does not quote the key")
	}
}
