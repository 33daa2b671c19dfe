package main

import (
	"net"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/wire"
)

// TestServeUDPMemberTTL: --udp-member-ttl must be positive (a usage error
// otherwise, before anything is served), and it is how long a UDP room
// member stays one without sending anything.
func TestServeUDPMemberTTL(t *testing.T) {
	t.Parallel()
	for _, ttl := range []string{"0s", "-1s"} {
		code, stdout, stderr := runCLI(t, "serve", "--udp", "127.0.0.1:0", "--udp-member-ttl", ttl)
		if code != exitUsage || !strings.Contains(stderr, "--udp-member-ttl "+ttl+": want a positive duration") || stdout != "" {
			t.Errorf("--udp-member-ttl %s: exit %d, stdout %q, stderr %q; want a usage error", ttl, code, stdout, stderr)
		}
	}
	if runtime.GOOS != "linux" {
		t.Skip("the portable server has no UDP rooms")
	}
	p := start(t, t.TempDir(), "serve", "--udp", "127.0.0.1:0", "--udp-member-ttl", "100ms")
	addr := p.stdout.waitFor(t, regexp.MustCompile(`^listening udp://(127\.0\.0\.1:\d+)/?$`), 10*time.Second)[1]
	dial := func() net.Conn {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	roundTrip := func(c net.Conn, m wire.RoomMsg) wire.RoomMsg {
		t.Helper()
		b, err := wire.AppendRoom(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		var got wire.RoomMsg
		if err := wire.ParseRoom(buf[:n], &got); err != nil {
			t.Fatalf("reply %q: %v", buf[:n], err)
		}
		return got
	}
	member, pub := dial(), dial()
	room := []byte("r")
	if m := roundTrip(member, wire.RoomMsg{Op: wire.RoomJoin, Room: room}); m.Op != wire.RoomJoined {
		t.Fatalf("join reply %q", byte(m.Op))
	}
	time.Sleep(500 * time.Millisecond) // well past the TTL and a sweep
	if m := roundTrip(pub, wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("publish next")}); m.Op != wire.RoomEcho {
		t.Fatalf("publisher's echo: %q", byte(m.Op))
	}
	b, _ := wire.AppendRoom(nil, &wire.RoomMsg{Op: wire.RoomPublish, Room: room, Payload: []byte("x")})
	if _, err := pub.Write(b); err != nil {
		t.Fatal(err)
	}
	// The publish is served before the member's echo: a delivery would come
	// first.
	if m := roundTrip(member, wire.RoomMsg{Op: wire.RoomEcho, Payload: []byte("end")}); m.Op != wire.RoomEcho {
		t.Fatalf("expired member got %q seq %d, want only its echo", byte(m.Op), m.Seq)
	}
	if code, _ := p.interrupt(t, 8*time.Second); code != exitOK {
		t.Errorf("serve exit %d after SIGINT, want 0; stderr:\n%s", code, p.stderr)
	}
	if !regexp.MustCompile(`members 0, deliveries 0, drops 0`).MatchString(p.stdout.String()) {
		t.Errorf("counters on exit, want members 0, deliveries 0:\n%s", p.stdout)
	}
}
