package scenarios

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The Spec as run is stored in result files as JSON; it must come back whole.
func TestSpecJSON(t *testing.T) {
	t.Parallel()
	for _, s := range Builtins() {
		s.Apply(Overrides{Warmup: ptr(1500 * time.Millisecond)})
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Spec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		b2, _ := json.Marshal(&back)
		if string(b) != string(b2) {
			t.Errorf("%s: round trip changed the JSON:\n%s\n%s", s.Name, b, b2)
		}
		p1, _ := s.Plan(Limits{})
		p2, err := back.Plan(Limits{})
		if err != nil || !reflect.DeepEqual(p1, p2) {
			t.Errorf("%s: plans differ after a round trip: %v\n%+v\n%+v", s.Name, err, p1, p2)
		}
	}
	s, _ := Builtin("echo")
	b, _ := json.Marshal(s)
	for _, want := range []string{`"warmup":"3s"`, `"duration":"20s"`, `"connect_rate":2000`, `"expr":"p99 \u003c 100ms"`, `"file":"builtin:echo"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || time.Duration(d) != 90*time.Second {
		t.Errorf("got %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`1000`), &d); err != nil || time.Duration(d) != time.Microsecond {
		t.Errorf("got %v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("want an error for \"soon\"")
	}
	if err := json.Unmarshal([]byte(`true`), &d); err == nil {
		t.Error("want an error for true")
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "echo.yaml", Line: 12, Col: 11, Msg: "phases[0].rate: must be > 0 (got -5)"}, "echo.yaml:12:11: phases[0].rate: must be > 0 (got -5)"},
		{Error{File: "echo.yaml", Line: 12, Msg: "m"}, "echo.yaml:12: m"},
		{Error{File: "echo.yaml", Msg: "m"}, "echo.yaml: m"},
		{Error{File: "echo.yaml", Line: 3, Col: 4, Flag: "--rate", Msg: "must be > 0 (got -5)"}, "--rate: must be > 0 (got -5)"},
		{Error{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	var l errList
	l.add(&Error{Flag: "--conns", Msg: "m"})
	l.add(&Error{Flag: "--conns", Msg: "m"})
	if err := l.err(); err == nil || err.Error() != "--conns: m" {
		t.Errorf("repeats: got %v", err)
	}
	l.add(&Error{Flag: "--size", Msg: "n"})
	var e *Error
	if err := l.err(); !errors.As(err, &e) || e.Flag != "--conns" {
		t.Errorf("errors.As: got %v", e)
	}
}

func TestEmbeddedStream(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		o    Overrides
		want bool
	}{
		{"echo", Overrides{}, true},
		{"echo-tcp", Overrides{}, true},
		{"echo-udp", Overrides{}, false},
		{"echo", Overrides{Target: ptr("ws://localhost:8080")}, false},
	} {
		s, _ := Builtin(tt.name)
		s.Apply(tt.o)
		if got := s.EmbeddedStream(); got != tt.want {
			t.Errorf("%s %+v: got %v, want %v", tt.name, tt.o, got, tt.want)
		}
	}
}
