package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/gobwas/ws"

	"github.com/sockbench/sockbench/internal/metrics"
	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/wire"
)

// dialed is a connection with its handshake done.
type dialed struct {
	nc       net.Conn
	leftover []byte // bytes read past the handshake, to parse first
}

// dial opens one connection to t: TCP connect, then TLS and the WebSocket
// upgrade for ws/wss; a connected UDP socket for udp. id picks the source
// address on loopback (see netDialer). An error from the TCP connect is
// returned as it is (the target is unreachable); a failed upgrade is a
// *metrics.HandshakeError holding what the server answered.
func dial(ctx context.Context, t plan.Target, timeout time.Duration, id uint32) (dialed, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nd := netDialer(t, id)
	switch t.Transport {
	case plan.UDP:
		nc, err := nd.DialContext(ctx, "udp", t.Addr)
		return dialed{nc: nc}, connectErr(err)
	case plan.TCP:
		nc, err := nd.DialContext(ctx, "tcp", t.Addr)
		return dialed{nc: nc}, connectErr(err)
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return dialed{}, err
	}
	nc, err := nd.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return dialed{}, connectErr(err)
	}
	// Interrupted (or past the timeout) during TLS or the upgrade: fail
	// the reads and writes at once.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	if t.TLS {
		tc := tls.Client(nc, &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: t.Insecure}) //nolint:gosec // --insecure is the user's explicit choice
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return dialed{}, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	answer := &answerRecorder{r: nc}
	br, _, err := ws.Dialer{}.Upgrade(struct {
		io.Reader
		io.Writer
	}{answer, nc}, u)
	if err != nil || !stop() {
		nc.Close()
		if err == nil {
			err = ctx.Err()
		}
		return dialed{}, &metrics.HandshakeError{Err: err, Answer: answer.got}
	}
	_ = nc.SetDeadline(time.Time{})
	out := dialed{nc: nc}
	if br != nil {
		if n := br.Buffered(); n > 0 {
			out.leftover = make([]byte, n)
			_, _ = br.Read(out.leftover)
		}
		ws.PutReader(br)
	}
	return out, nil
}

// connectError is a failed connect (TCP, or a UDP socket's): the target
// is unreachable, as opposed to one that answered wrongly.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

func connectErr(err error) error {
	if err == nil {
		return nil
	}
	return &connectError{err}
}

// answerRecorder reads from r and keeps the first result.RejectedBytes
// bytes read: what a server answered to the upgrade request.
type answerRecorder struct {
	r   io.Reader
	got []byte
}

func (a *answerRecorder) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if keep := min(n, result.RejectedBytes-len(a.got)); keep > 0 {
		a.got = append(a.got, p[:keep]...)
	}
	return n, err
}

// loopbackSources is how many IPv4 loopback source addresses connections
// to a loopback target are spread over: 127.0.0.1 to 127.0.0.64.
const loopbackSources = 64

// netDialer returns the dialer for connection id. On Linux, to an IPv4 loopback
// target, connections come from loopbackSources different source
// addresses, with the port left for connect to choose
// (IP_BIND_ADDRESS_NO_PORT). Linux picks connect's ephemeral ports from one
// half of the range first and scans the whole range under a lock once that
// half is used up; from one source address to one target port that happens
// at about 14,000 connections, after which each connect takes milliseconds.
// Different source addresses share ports, so the scans never start.
func netDialer(t plan.Target, id uint32) *net.Dialer {
	d := &net.Dialer{}
	host, _, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return d
	}
	ip := net.ParseIP(host).To4()
	if !spreadLoopback || ip == nil || !ip.IsLoopback() {
		return d
	}
	src := net.IPv4(127, 0, 0, byte(1+id%loopbackSources))
	if t.Transport == plan.UDP {
		d.LocalAddr = &net.UDPAddr{IP: src}
	} else {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	d.Control = bindNoPort
	return d
}

// newCodec returns the framing for a connection of plan p.
func newCodec(p *plan.Plan, id uint32) wire.Codec {
	max := max(p.MaxSize(), 1<<16) + 64
	switch p.Target.Transport {
	case plan.UDP:
		return wire.Datagram{}
	case plan.TCP:
		switch p.Framing {
		case plan.Line:
			return wire.Line{Max: max}
		case plan.Raw:
			return wire.Raw{Size: p.Phases[0].Size}
		}
		return wire.Len32{Max: max}
	}
	return wire.NewWSClient(max, false, uint64(id)*0x9E3779B97F4A7C15+1)
}

// Probe checks that the target answers within the connect timeout: one
// connection (with handshake) for ws and tcp, an echoed probe datagram for
// udp. It records nothing; a run calls it before its clock starts.
func Probe(ctx context.Context, p *plan.Plan) error {
	t := p.Target
	d, err := dial(ctx, t, p.ConnectTimeout, 0)
	var ce *connectError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("target %s unreachable: %w", t.URL, err)
	case err != nil: // connected, then TLS or the WebSocket upgrade failed
		return fmt.Errorf("target %s: %w", t.URL, err)
	}
	defer d.nc.Close()
	if t.Transport != plan.UDP {
		return nil
	}
	buf := make([]byte, max(p.Phases[0].Size, wire.HeaderSize))
	wire.Pad(buf)
	h := wire.Header{Flags: wire.FlagProbe}
	h.Put(buf)
	deadline := time.Now().Add(p.ConnectTimeout)
	_ = d.nc.SetDeadline(deadline)
	rb := make([]byte, 65536)
	// Resend a few times: a lost probe datagram is not an unreachable target.
	for time.Now().Before(deadline) {
		if _, err := d.nc.Write(buf); err != nil {
			return fmt.Errorf("target %s unreachable: %w", t.URL, err)
		}
		_ = d.nc.SetReadDeadline(minTime(deadline, time.Now().Add(200*time.Millisecond)))
		n, err := d.nc.Read(rb)
		if err == nil {
			var got wire.Header
			if got.Decode(rb[:n]) == nil && got.Flags&wire.FlagProbe != 0 {
				return nil
			}
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			continue
		}
		return fmt.Errorf("target %s unreachable: %w", t.URL, err)
	}
	return fmt.Errorf("target %s unreachable: no UDP echo of a probe datagram within %s", t.URL, p.ConnectTimeout)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
