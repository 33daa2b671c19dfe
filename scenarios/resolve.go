package scenarios

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/wire"
)

// Limits are what this machine allows one process, found by the caller.
type Limits struct {
	// MaxConns is how many connections the open-files limit leaves room for;
	// 0 leaves connection counts unchecked.
	MaxConns int
}

// Plan validates s and resolves it into the plan an engine runs: the target
// URL parsed, defaults filled in, total rates turned into per-connection
// rates. Every problem is an *Error positioned at the offending value in the
// file, or naming the flag that set it, with a hint on how to fix it; several
// are joined with errors.Join. s is not modified.
func (s *Spec) Plan(lim Limits) (*plan.Plan, error) {
	r := &resolver{s: s}
	p := &plan.Plan{
		Name:           s.Name,
		Warmup:         DefaultWarmup,
		Timeout:        DefaultTimeout,
		ConnectTimeout: DefaultConnectTimeout,
	}
	if strings.TrimSpace(s.Name) == "" {
		r.failf("name", "must not be empty; name the scenario")
	}
	p.Target = r.target()
	p.Framing = r.framing(p.Target.Transport)
	mode := r.mode() // "" if unknown: then the rules of neither mode are checked
	p.Mode = mode
	if s.Warmup != nil {
		p.Warmup = time.Duration(*s.Warmup)
		if p.Warmup < 0 {
			r.failf("warmup", "must be >= 0 (got %s); use 0s for no warm-up", p.Warmup)
		}
	}
	if s.Timeout != nil {
		p.Timeout = time.Duration(*s.Timeout)
		if p.Timeout <= 0 {
			r.failf("timeout", "must be > 0 (got %s); set how long to wait for a reply before counting it lost, like 1s", p.Timeout)
		}
	}
	if s.ConnectTimeout != nil {
		p.ConnectTimeout = time.Duration(*s.ConnectTimeout)
		if p.ConnectTimeout <= 0 {
			r.failf("connect_timeout", "must be > 0 (got %s); set how long connecting may take, like 5s", p.ConnectTimeout)
		}
	}
	if s.MaxInFlight != nil {
		p.MaxInFlight = *s.MaxInFlight
		switch {
		case p.MaxInFlight < 0:
			r.failf("max_inflight", "must be >= 0 (got %d); 0 means no cap", p.MaxInFlight)
		case mode == plan.Closed:
			r.failf("max_inflight", "only applies to open mode; in closed mode set inflight per phase")
		}
	}
	if len(s.Phases) == 0 {
		r.failf("phases", "at least one phase is required, with duration and conns")
	}
	names := map[string]int{}
	for i := range s.Phases {
		ph := r.phase(i, p, mode, lim)
		if j, dup := names[ph.Name]; dup {
			r.failf(fmt.Sprintf("phases[%d].name", i), "%q is already the name of phases[%d]; give each phase its own name", ph.Name, j)
		}
		names[ph.Name] = i
		if p.Framing == plan.Raw && i > 0 && ph.Size != p.Phases[0].Size {
			r.failf(fmt.Sprintf("phases[%d].size", i), "raw framing has no delimiters: every phase must use the size of phases[0] (%d), got %d; use len32 framing to vary sizes", p.Phases[0].Size, ph.Size)
		}
		p.Phases = append(p.Phases, ph)
	}
	if s.Broadcast != nil {
		p.Broadcast = r.broadcast(p, lim)
	} else if s.notBroadcast != "" {
		r.errs.add(&Error{Flag: s.notBroadcast, Msg: fmt.Sprintf("only applies to broadcast scenarios; %s has no broadcast block (try the broadcast built-in)", s.Name)})
	}
	if err := r.errs.err(); err != nil {
		return nil, err
	}
	return p, nil
}

type resolver struct {
	s    *Spec
	errs errList
}

// failf records a problem with the value at path.
func (r *resolver) failf(path, format string, args ...any) {
	r.errs.add(r.s.errorAt(path, fmt.Sprintf(format, args...)))
}

// name is how hints refer to the value at path: its flag if one set it, else
// its key.
func (r *resolver) name(path string) string {
	if f, ok := r.s.flag[path]; ok {
		return f
	}
	return path[strings.LastIndexByte(path, '.')+1:]
}

// errorAt makes an *Error about the value at path: naming the flag that set
// it, or positioned at it in the file (or at the nearest enclosing node that
// has a position, for values left out).
func (s *Spec) errorAt(path, msg string) *Error {
	if f, ok := s.flag[path]; ok {
		return &Error{Flag: f, Msg: msg}
	}
	e := &Error{File: s.File, Msg: msg}
	if path != "" {
		e.Msg = path + ": " + msg
	}
	for p := path; ; p = parent(p) {
		if at, ok := s.at[p]; ok {
			e.Line, e.Col = at.line, at.col
			break
		}
		if p == "" {
			break
		}
	}
	return e
}

// parent is the path of the node holding path: phases[0].rate -> phases[0]
// -> phases -> "".
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

const schemes = "ws://, wss://, tcp:// or udp://"

// target resolves Target and Transport.
func (r *resolver) target() plan.Target {
	s := r.s
	t := plan.Target{URL: s.Target, Insecure: s.Insecure}
	switch s.Transport {
	case "", plan.WS, plan.TCP, plan.UDP:
	default:
		r.failf("transport", "unknown transport %q; want ws, tcp or udp", s.Transport)
	}
	if s.Target == "" {
		t.Embedded = true
		t.Transport = s.Transport
		if t.Transport == "" {
			t.Transport = plan.WS
		}
		return t
	}
	if err := parseTarget(&t, s.Target); err != nil {
		r.failf("target", "%v", err)
		return t
	}
	if s.Transport != "" && s.Transport != t.Transport {
		scheme := s.Target[:strings.Index(s.Target, "://")]
		if _, ok := s.flag["target"]; ok {
			r.failf("target", "scheme %s:// does not match transport: %s in the scenario; give a %s:// URL or pick a %s scenario",
				scheme, s.Transport, s.Transport, t.Transport)
		} else {
			r.failf("transport", "%q conflicts with the target's scheme %s://; drop %s (a target URL sets the transport)",
				s.Transport, scheme, r.name("transport"))
		}
	}
	return t
}

// parseTarget fills t from the URL raw.
func parseTarget(t *plan.Target, raw string) error {
	i := strings.Index(raw, "://")
	if i < 0 {
		return fmt.Errorf("%q has no scheme; want %s, like tcp://localhost:9000", raw, schemes)
	}
	scheme := strings.ToLower(raw[:i])
	switch scheme {
	case "ws", "wss":
		t.Transport, t.TLS = plan.WS, scheme == "wss"
	case "tcp":
		t.Transport = plan.TCP
	case "udp":
		t.Transport = plan.UDP
	default:
		return fmt.Errorf("unknown scheme %q in %q; want %s", scheme, raw, schemes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("bad URL %q: %v", raw, err)
	}
	host, port := u.Hostname(), u.Port()
	switch scheme {
	case "ws", "wss":
		if host == "" {
			return fmt.Errorf("%q has no host; want %s://host[:port][/path]", raw, scheme)
		}
		if port == "" {
			port = "80"
			if t.TLS {
				port = "443"
			}
		}
	default:
		if host == "" || port == "" {
			return fmt.Errorf("%q needs host:port, like %s://localhost:9000", raw, scheme)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q: a %s:// target is host:port only, without path or query", raw, scheme)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q in %q; want 1 to 65535", port, raw)
	}
	t.Addr = net.JoinHostPort(host, port)
	return nil
}

func (r *resolver) framing(tr plan.Transport) plan.Framing {
	f := r.s.Framing
	switch f {
	case "", plan.Len32, plan.Line, plan.Raw:
	default:
		r.failf("framing", "unknown framing %q; want len32, line or raw", f)
		return plan.Len32
	}
	if tr != plan.TCP {
		// transport: tcp with a URL of another scheme is reported by target.
		if f != "" && tr != "" && r.s.Transport != plan.TCP {
			r.failf("framing", "only applies to the tcp transport, and this scenario runs over %s; drop %s", tr, r.name("framing"))
		}
		return ""
	}
	if f == "" {
		return plan.Len32
	}
	return f
}

func (r *resolver) mode() plan.Mode {
	switch r.s.Mode {
	case "":
		return plan.Open
	case plan.Open, plan.Closed:
		return r.s.Mode
	}
	r.failf("mode", "unknown mode %q; want open (send on a fixed schedule) or closed (send when a reply arrives)", r.s.Mode)
	return ""
}

func (r *resolver) phase(i int, p *plan.Plan, mode plan.Mode, lim Limits) plan.Phase {
	ph := r.s.Phases[i]
	at := func(key string) string { return fmt.Sprintf("phases[%d].%s", i, key) }
	out := plan.Phase{
		Name:        ph.Name,
		Duration:    time.Duration(ph.Duration),
		Conns:       ph.Conns,
		ConnectRate: DefaultConnectRate,
		Size:        DefaultSize,
	}
	if out.Name == "" {
		out.Name = fmt.Sprintf("phase-%d", i+1)
	}
	if out.Duration <= 0 {
		r.failf(at("duration"), "must be > 0 (got %s); set how long the phase lasts, like 20s", out.Duration)
	}
	switch {
	case out.Conns < 1:
		r.failf(at("conns"), "must be >= 1 (got %d)", out.Conns)
	case lim.MaxConns > 0 && out.Conns > lim.MaxConns:
		r.failf(at("conns"), "%d connections need more open files than the limit allows (at most %d here); lower conns or run several processes",
			out.Conns, lim.MaxConns)
	}
	if ph.ConnectRate != nil {
		out.ConnectRate = *ph.ConnectRate
		if out.ConnectRate <= 0 {
			r.failf(at("connect_rate"), "must be > 0 (got %s); set how many connections to open per second, like 1000", num(out.ConnectRate))
		}
	}
	switch mode {
	case plan.Closed:
		noRate := func(key string) {
			r.failf(at(key), "closed mode sends when replies arrive and takes no rate; drop %s or set mode: open", r.name(at(key)))
		}
		if ph.Rate != nil {
			noRate("rate")
		}
		if ph.PerConnRate != nil {
			noRate("per_conn_rate")
		}
		out.InFlight = DefaultInFlight
		if ph.InFlight != nil {
			out.InFlight = *ph.InFlight
			if out.InFlight < 1 {
				r.failf(at("inflight"), "must be >= 1 (got %d); set how many messages each connection keeps outstanding", out.InFlight)
			}
		}
	case plan.Open:
		if r.s.Broadcast != nil {
			for _, key := range []string{"rate", "per_conn_rate", "inflight"} {
				if r.s.has(at(key)) {
					r.failf(at(key), "a broadcast scenario sets its rate with broadcast.publish_rate (publishes/s per room; flag --publish-rate); drop %s", r.name(at(key)))
				}
			}
			break
		}
		if ph.InFlight != nil {
			r.failf(at("inflight"), "only applies to closed mode; drop %s or set mode: closed", r.name(at("inflight")))
		}
		switch {
		case ph.Rate != nil && ph.PerConnRate != nil:
			r.failf(at("per_conn_rate"), "set either %s (total msg/s) or %s (msg/s per connection), not both",
				r.name(at("rate")), r.name(at("per_conn_rate")))
		case ph.Rate != nil:
			if *ph.Rate <= 0 {
				r.failf(at("rate"), "must be > 0 (got %s); set a positive total rate in msg/s", num(*ph.Rate))
			} else if out.Conns > 0 {
				out.PerConnRate = *ph.Rate / float64(out.Conns)
			}
		case ph.PerConnRate != nil:
			out.PerConnRate = *ph.PerConnRate
			if out.PerConnRate <= 0 {
				r.failf(at("per_conn_rate"), "must be > 0 (got %s); set a positive rate in msg/s per connection", num(out.PerConnRate))
			}
		default:
			r.failf(fmt.Sprintf("phases[%d]", i), "open mode needs a send rate; set rate (total msg/s) or per_conn_rate (msg/s per connection)")
		}
	}
	if ph.Size != nil {
		out.Size = *ph.Size
		switch {
		case p.Target.Transport == plan.TCP && p.Framing == plan.Line && out.Size < wire.TextHeaderSize:
			r.failf(at("size"), "must be at least %d bytes with TCP line framing, whose measurement header is %d hex characters (got %d)",
				wire.TextHeaderSize, wire.TextHeaderSize, out.Size)
		case out.Size < wire.HeaderSize:
			r.failf(at("size"), "must be at least %d bytes to hold the measurement header (got %d)", wire.HeaderSize, out.Size)
		case out.Size > MaxSize:
			r.failf(at("size"), "must be at most %d bytes (1 MiB) (got %d)", MaxSize, out.Size)
		case p.Target.Transport == plan.UDP && out.Size > MaxUDPSize:
			r.failf(at("size"), "must be at most %d bytes over UDP, the largest datagram payload (got %d)", MaxUDPSize, out.Size)
		}
	}
	return out
}

// num formats a float without exponent or trailing zeros: 10000, 0.5, -5.
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
