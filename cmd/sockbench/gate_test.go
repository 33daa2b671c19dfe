package main

import (
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// wsServer is a WebSocket server of the test's own: answer gets each
// message a connection sent (counted from 1) and returns what to send
// back, nil for nothing.
func wsServer(t *testing.T, answer func(n int, msg []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		defer c.Close()
		for n := 1; ; n++ {
			b, op, err := wsutil.ReadClientData(c)
			if err != nil {
				return
			}
			if out := answer(n, b); out != nil {
				if err := wsutil.WriteServerMessage(c, op, out); err != nil {
					return
				}
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close() // does not close hijacked connections
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String() + "/"
}

// shortEcho runs the built-in echo, smaller and shorter.
var shortEcho = []string{"--conns", "20", "--rate", "400", "--duration", "1500ms", "--warmup", "300ms", "--timeout", "300ms", "--quiet"}

// The built-in echo gate fails a server that silently drops messages, and
// the summary does not call a lossy run clean.
func TestGateLossyServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		keep  func(n int) bool // which messages the server answers
		share *regexp.Regexp   // the loss as the gate measured it
	}{
		{"drops every 10th", func(n int) bool { return n%10 != 0 }, regexp.MustCompile(`loss <= 0% \(measured (9\.\d\d|10\.\d)%\)`)},
		{"answers every 10th", func(n int) bool { return n%10 == 0 }, regexp.MustCompile(`loss <= 0% \(measured (8\d\.\d|9\d\.\d)%\)`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := wsServer(t, func(n int, msg []byte) []byte {
				if tc.keep(n) {
					return msg
				}
				return nil
			})
			out := filepath.Join(t.TempDir(), "r.json")
			code, stdout, stderr := runCLI(t, append([]string{"run", "echo", "--target", target, "--out", out}, shortEcho...)...)
			if code != exitGate {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nstdout:\n%s", code, exitGate, stderr, stdout)
			}
			if !tc.share.MatchString(stderr) {
				t.Errorf("stderr does not name the loss (%s):\n%s", tc.share, stderr)
			}
			if strings.Contains(stdout, "errors     none\n") || !regexp.MustCompile(`errors     none, but \d+ of \d+ messages \(\d+\.?\d*%\) were lost`).MatchString(stdout) {
				t.Errorf("summary shows no loss beside the errors:\n%s", stdout)
			}
			r := readResult(t, out)
			if r.Counters.Lost == 0 || r.Counters.Received == 0 {
				t.Errorf("lost %d, received %d", r.Counters.Lost, r.Counters.Received)
			}
		})
	}
}

// A server that answers every message with something else: the gate fails,
// the summary warns that no reply matched and shows what the server sent.
func TestGateServerSendsSomethingElse(t *testing.T) {
	t.Parallel()
	target := wsServer(t, func(int, []byte) []byte { return []byte(`{"event":"pong"}`) })
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runCLI(t, append([]string{"run", "echo", "--target", target, "--out", out}, shortEcho...)...)
	if code != exitGate {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitGate, stderr)
	}
	for _, want := range []string{
		"WARNING    no reply matched any of the ",
		"does it echo each message unchanged",
		"rejected   what the target sent that sockbench could not use (the first 5 kept):",
		"1. unparsed, connection ",
		`|{"event":"pong"}|`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	r := readResult(t, out)
	if len(r.Rejected) != 5 || string(r.Rejected[0].Bytes) != `{"event":"pong"}` {
		t.Errorf("rejected %+v", r.Rejected)
	}
}

// A target that drops every connection: the run stops at once instead of
// running its window at zero connections, writes what it measured and
// exits 3, saying why.
func TestGateEveryConnectionLost(t *testing.T) {
	t.Parallel()
	target := startDropServer(t, 5, 0, func(uint32) closeMode { return reset })
	out := filepath.Join(t.TempDir(), "r.json")
	start := time.Now()
	code, stdout, stderr := runCLI(t, "run", "echo-tcp", "--target", target, "--out", out,
		"--conns", "4", "--rate", "80", "--duration", "30s", "--warmup", "100ms", "--quiet")
	took := time.Since(start)
	if code != exitCannot {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitCannot, stderr)
	}
	if !strings.Contains(stderr, "the run stopped early: every connection was lost and none remained") {
		t.Errorf("stderr does not say why:\n%s", stderr)
	}
	if !strings.Contains(stdout, "STOPPED at ") {
		t.Errorf("summary does not say the run stopped:\n%s", stdout)
	}
	if took > 15*time.Second {
		t.Errorf("the run took %s of its 30 s window with no connection left", took)
	}
	r := readResult(t, out)
	if r.Stopped == nil || r.Counters.ConnsDropped != 4 {
		t.Errorf("stopped %+v, dropped %d: want a stop and 4 dropped", r.Stopped, r.Counters.ConnsDropped)
	}
}
